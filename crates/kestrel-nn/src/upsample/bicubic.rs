//! Bicubic upsampling with PyTorch's semantics (`mode="bicubic"`: Keys' kernel with a = −0.75,
//! taps clamped at the border, `align_corners` false by default), as a separable linear map.

use super::error::UpsampleError;
use super::interp::{apply_separable, cubic_matrix};
use super::resize::ResizeTo;
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Tensor;

/// Configuration of [`Bicubic`].
#[derive(Config, Debug)]
pub struct BicubicConfig {
    /// Output size: a scale factor per axis or a fixed size.
    #[config(default = "ResizeTo::Scale([2.0, 2.0])")]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners`: true maps the corner pixels' centres onto each other;
    /// false (PyTorch's default, and kestrel's) maps the corners of the pixel grids.
    #[config(default = false)]
    pub align_corners: bool,
}

impl BicubicConfig {
    /// Checks the configuration and builds the (parameter-free) module.
    pub fn init(&self) -> Result<Bicubic, UpsampleError> {
        self.resize.validate("bicubic")?;
        Ok(Bicubic {
            resize: self.resize,
            align_corners: self.align_corners,
        })
    }
}

/// Bicubic upsampling: out = A_h · x · A_wᵀ with PyTorch's cubic-convolution weights (see
/// [`super::interp`]); like PyTorch's, it can overshoot the input's range. Differentiable with respect to the input; channels are unchanged.
#[derive(Module, Debug)]
pub struct Bicubic {
    /// Output size rule.
    #[module(skip)]
    pub resize: ResizeTo,
    /// PyTorch's `align_corners`.
    pub align_corners: bool,
}

impl Bicubic {
    /// Output (H′, W′) for an input (H, W); `None` when it would be empty.
    pub fn output_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        self.resize.output_size(input)
    }

    /// Upsamples an (N, C, H, W) tensor.
    ///
    /// # Panics
    /// When the input's H or W is 0 or the output would be empty (see [`Bicubic::output_size`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [ah, aw] = self
            .resize
            .axes([h, w])
            .unwrap_or_else(|| panic!("bicubic: no output size for input {h}×{w}"));
        let mh = cubic_matrix(&ah, self.align_corners);
        let mw = cubic_matrix(&aw, self.align_corners);
        apply_separable(x, &mh, &mw, [ah.output, aw.output])
    }
}
