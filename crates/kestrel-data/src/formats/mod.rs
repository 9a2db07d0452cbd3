//! The dataset formats `--data` names, one file each:
//! - [`shapes`]: the built-in synthetic dataset (`shapes[:k=v,...]`);
//! - [`folder`]: an ImageFolder tree, one directory per class (`folder:PATH`);
//! - [`seg`]: images with per-pixel class masks (`seg:PATH`), and the mask's ignore label;
//! - [`idx`]: MNIST-style IDX files (`idx:PATH`).
//!
//! [`crate::dataset::open`] opens any of them from a [`crate::DataSpec`].

pub mod folder;
pub mod idx;
pub mod seg;
pub mod shapes;
