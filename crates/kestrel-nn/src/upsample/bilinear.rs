//! Bilinear upsampling with PyTorch's semantics (`mode="bilinear"`, `align_corners` false by
//! default), as a separable linear map.

use super::error::UpsampleError;
use super::interp::{apply_separable, linear_matrix};
use super::resize::ResizeTo;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

/// Configuration of [`Bilinear`].
#[derive(Config, Debug)]
pub struct BilinearConfig {
    /// Output size: a scale factor per axis or a fixed size.
    #[config(default = "ResizeTo::Scale([2.0, 2.0])")]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners`: true maps the corner pixels' centres onto each other;
    /// false (PyTorch's default, and kestrel's) maps the corners of the pixel grids.
    #[config(default = false)]
    pub align_corners: bool,
}

impl BilinearConfig {
    /// Checks the configuration and builds the (parameter-free) module.
    pub fn init(&self) -> Result<Bilinear, UpsampleError> {
        self.resize.validate("bilinear")?;
        Ok(Bilinear {
            resize: self.resize,
            align_corners: self.align_corners,
        })
    }
}

/// Bilinear upsampling: out = A_h · x · A_wᵀ with PyTorch's interpolation weights (see
/// [`super::interp`]). Differentiable with respect to the input; channels are unchanged.
#[derive(Module, Debug)]
pub struct Bilinear {
    /// Output size rule.
    #[module(skip)]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners`.
    pub align_corners: bool,
}

impl Bilinear {
    /// Output (H′, W′) for an input (H, W); `None` when it would be empty.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.resize.output_size(input)
    }

    /// Upsamples an (N, C, H, W) tensor.
    ///
    /// # Panics
    /// When the input's H or W is 0 or the output would be empty (see [`Bilinear::output_size`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [ah, aw] = self
            .resize
            .axes([h, w])
            .unwrap_or_else(|| panic!("bilinear: no output size for input {h}×{w}"));
        let mh = linear_matrix(&ah, self.align_corners);
        let mw = linear_matrix(&aw, self.align_corners);
        apply_separable(x, &mh, &mw, [ah.output, aw.output])
    }
}
