"""A PyTorch twin of kestrel's FCN segmenters on MobileNetV2 (crates/kestrel-nn/src/models/fcn.rs),
for bench/train_compare.py (not run on its own).

The architecture, as kestrel builds it:
- backbone: torchvision's `mobilenet_v2(width_mult=W).features` (stem, the 17 inverted residuals,
  the 1x1 head conv to 1280 channels at W <= 1); its classifier is not part of the twin (kestrel
  keeps an unused one inside the model, which gets no gradient and no update, and `kestrel info`
  does not count it);
- output stride 16 or 8 (DeepLab's rule, MobileNetV2Config::blocks): walking the blocks with the
  running stride starting at 2 (the stem), a block whose stride would push it past the output
  stride keeps stride 1 and its depthwise 3x3 convolution the current rate, and the rate of the
  blocks after it is multiplied by the stride it gave up; padding = dilation. At output stride 8
  that is blocks 6-12 at rate 2 and 14-16 at rate 4 (block 6, the first 64-channel one, at rate 1;
  block 13, the first 160-channel one, at rate 2);
- taps: the outputs of blocks 5 (the last 32-channel one, stride 8) and 12 (the last 96-channel
  one, stride 16 at output stride 32) and of the head;
- 1x1 score convolutions with bias on each tap (zero-initialised, as FCN and kestrel do);
- FCN-32s: the head's scores upsampled by the output stride; FCN-16s: upsampled by
  output_stride / 16 (none when 1) to the stride-16 map, cropped top-left to the skip's size,
  added, upsampled by 16; FCN-8s: once more to the stride-8 map, final factor 8;
- the final scores cropped top-left to the input size;
- upsamplers (UpsamplerConfig::for_kind): nearest, bilinear or bicubic is
  `F.interpolate(scale_factor=f, align_corners=False)` (kestrel's Interpolate has PyTorch's
  semantics, align_corners false); transposed is `ConvTranspose2d(K, K, kernel=2f - f % 2,
  stride=f, padding=(kernel - f) / 2)` with a bias and FCN's bilinear initialisation.
  pixelshuffle, carafe and meta have no twin.

Parameter counts, `sum(p.numel() for p in twin.parameters())` against the `params` of `kestrel
info fcn8s-mobilenet-v2 --width W --classes 10 --output-stride S --upsampler U --json`, 10 classes,
checked 2026-12-05 with `python3 bench/train_compare.py --check-twin ...` (which also compares
every convolution's input and output shapes, kernel, stride, dilation and groups, and each
transposed convolution's shapes and parameters, with kestrel's description; these all matched too,
for fcn32s, fcn16s and fcn8s at output strides 32, 16 and 8, at 128 and at 100 px):

| width | output stride | upsampler | twin | kestrel info |
|---|---|---|---|---|
| 1.0 | 32 | bilinear | 2,237,982 | 2,237,982 |
| 1.0 | 8 | bilinear | 2,237,982 | 2,237,982 |
| 1.0 | 32 | transposed | 2,266,812 | 2,266,812 |
| 1.0 | 8 | transposed | 2,263,592 | 2,263,592 |
| 0.5 | 32 | bilinear | 701,150 | 701,150 |
| 0.5 | 8 | bilinear | 701,150 | 701,150 |
| 0.5 | 32 | transposed | 729,980 | 729,980 |
| 0.5 | 8 | transposed | 726,760 | 726,760 |
"""

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

# The backbones, heads and upsamplers the twin covers.
BACKBONES = ("mobilenet-v2",)
VARIANTS = ("fcn32s", "fcn16s", "fcn8s")
UPSAMPLERS = ("nearest", "bilinear", "bicubic", "transposed")

# Indices of the tapped blocks (MobileNetV2Config::tap_blocks); `features[i + 1]` is block i.
TAP_BLOCKS = (5, 12)


def parse_name(model):
    """(variant, backbone) of a segmenter name `fcn8s-mobilenet-v2`, or None when it is not one
    the twin covers (a classifier, a ResNet backbone)."""
    head, _, backbone = model.partition("-")
    if head in VARIANTS and backbone in BACKBONES:
        return head, backbone
    return None


def depthwise(block):
    """The depthwise 3x3 convolution of a torchvision InvertedResidual."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(convs) == 1, block
    return convs[0]


def dilate(features, output_stride):
    """Turns the strides of `features` that would pass `output_stride` into dilation, as
    MobileNetV2Config::blocks does."""
    current, rate = 2, 1
    for block in list(features)[1:-1]:
        conv = depthwise(block)
        s = conv.stride[0]
        if current >= output_stride:
            conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
            rate *= s
        else:
            current *= s


def bilinear_kernel(k):
    """FCN's bilinear kernel of size k along one axis (kestrel's bilinear_kernel_1d)."""
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    return torch.tensor([1 - abs(i - c) / f for i in range(k)])


class Resample(nn.Module):
    """Nearest, bilinear or bicubic upsampling by an integer factor, align_corners false."""

    def __init__(self, mode, factor):
        super().__init__()
        self.mode, self.factor = mode, factor

    def forward(self, x):
        extra = {} if self.mode == "nearest" else {"align_corners": False}
        return F.interpolate(x, scale_factor=self.factor, mode=self.mode, **extra)


def upsampler(kind, classes, factor):
    """kestrel's UpsamplerConfig::for_kind(kind, classes, classes, factor); None for factor 1."""
    if factor == 1:
        return None
    if kind != "transposed":
        return Resample(kind, factor)
    k = 2 * factor - factor % 2
    up = nn.ConvTranspose2d(classes, classes, k, stride=factor, padding=(k - factor) // 2)
    w = bilinear_kernel(k)
    with torch.no_grad():
        up.weight.zero_()
        for c in range(classes):
            up.weight[c, c] = w[:, None] * w[None, :]
        up.bias.zero_()
    return up


def score(channels, classes):
    """A zero-initialised 1x1 score convolution with bias."""
    conv = nn.Conv2d(channels, classes, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def crop(x, h, w):
    """`x` cut to h x w from the top-left corner."""
    return x[:, :, :h, :w]


class FcnTwin(nn.Module):
    """kestrel's `fcnNs-mobilenet-v2` (see the module docstring)."""

    def __init__(self, variant, width, classes, output_stride, upsampler_kind):
        super().__init__()
        assert variant in VARIANTS and output_stride in (8, 16, 32)
        assert upsampler_kind in UPSAMPLERS
        self.features = torchvision.models.mobilenet_v2(width_mult=width).features
        dilate(self.features, output_stride)
        c8, c16 = (self.features[i + 1].out_channels for i in TAP_BLOCKS)
        c32 = self.features[-1][0].out_channels
        s16 = min(output_stride, 16)
        if variant == "fcn32s":
            factors = (1, 1, output_stride)
        elif variant == "fcn16s":
            factors = (output_stride // s16, 1, s16)
        else:
            factors = (output_stride // s16, s16 // 8, 8)
        self.score32 = score(c32, classes)
        self.score16 = score(c16, classes) if variant != "fcn32s" else None
        self.score8 = score(c8, classes) if variant == "fcn8s" else None
        self.up32 = upsampler(upsampler_kind, classes, factors[0]) if self.score16 else None
        self.up16 = upsampler(upsampler_kind, classes, factors[1]) if self.score8 else None
        self.up_final = upsampler(upsampler_kind, classes, factors[2])

    def taps(self, x):
        """The stride-8, stride-16 and last feature maps."""
        out = []
        x = self.features[0](x)
        for i, block in enumerate(list(self.features)[1:-1]):
            x = block(x)
            if i in TAP_BLOCKS:
                out.append(x)
        return out[0], out[1], self.features[-1](x)

    def forward(self, x):
        h, w = x.shape[-2:]
        f8, f16, f32 = self.taps(x)
        y = self.score32(f32)
        for conv, up, tap in ((self.score16, self.up32, f16), (self.score8, self.up16, f8)):
            if conv is None:
                continue
            skip = conv(tap)
            if up is not None:
                y = up(y)
            y = crop(y, *skip.shape[-2:]) + skip
        return crop(self.up_final(y), h, w)


def fcn_twin(model, width, classes, output_stride, upsampler_kind):
    """The twin of the segmenter `model` (e.g. `fcn8s-mobilenet-v2`), or None with the reason
    when there is none."""
    parsed = parse_name(model)
    if parsed is None:
        return None, f"no PyTorch twin of {model} (only fcn32s/16s/8s-mobilenet-v2)"
    if upsampler_kind not in UPSAMPLERS:
        return None, f"no PyTorch twin of the {upsampler_kind} upsampler ({', '.join(UPSAMPLERS)})"
    return FcnTwin(parsed[0], width, classes, output_stride, upsampler_kind), None


def conv_geometry(model, x):
    """The convolutions of `model` on `x` as `kestrel info` describes them, sorted — a
    convolution as ("conv", in [C, H, W], out [C, H, W], kernel, stride, dilation, groups), a
    transposed one as ("upsample", in, out, parameters) — and the model's parameter count."""
    rows = []

    def hook(m, inputs, output):
        i, o = list(inputs[0].shape[1:]), list(output.shape[1:])
        if isinstance(m, nn.ConvTranspose2d):
            rows.append(("upsample", i, o, sum(p.numel() for p in m.parameters())))
        else:
            rows.append(("conv", i, o, m.kernel_size[0], m.stride[0], m.dilation[0], m.groups))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return sorted(rows), sum(p.numel() for p in model.parameters())
