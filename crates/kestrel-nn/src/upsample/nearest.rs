//! Nearest-neighbour upsampling with PyTorch's `mode="nearest"` indexing.

use super::error::UpsampleError;
use super::interp::{nearest_indices, select_hw};
use super::resize::ResizeTo;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

/// Configuration of [`Nearest`].
#[derive(Config, Debug)]
pub struct NearestConfig {
    /// Output size: a scale factor per axis or a fixed size.
    #[config(default = "ResizeTo::Scale([2.0, 2.0])")]
    pub resize: ResizeTo,
}

impl NearestConfig {
    /// Checks the configuration and builds the (parameter-free) module.
    pub fn init(&self) -> Result<Nearest, UpsampleError> {
        self.resize.validate("nearest")?;
        Ok(Nearest {
            resize: self.resize,
        })
    }
}

/// Nearest-neighbour upsampling: output (i, j) copies input (⌊i·sₕ⌋, ⌊j·s_w⌋) with PyTorch's
/// source scale (see [`super::interp`]). Channels are unchanged.
#[derive(Module, Debug)]
pub struct Nearest {
    /// Output size rule.
    #[module(skip)]
    pub resize: ResizeTo,
}

impl Nearest {
    /// Output (H′, W′) for an input (H, W); `None` when it would be empty.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.resize.output_size(input)
    }

    /// Upsamples an (N, C, H, W) tensor.
    ///
    /// # Panics
    /// When the input's H or W is 0 or the output would be empty (see [`Nearest::output_size`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [ah, aw] = self
            .resize
            .axes([h, w])
            .unwrap_or_else(|| panic!("nearest: no output size for input {h}×{w}"));
        select_hw(x, &nearest_indices(&ah), &nearest_indices(&aw))
    }
}
