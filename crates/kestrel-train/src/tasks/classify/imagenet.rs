//! Classifying image files with an ImageNet-1k classifier (e.g. torchvision weights imported into
//! a kestrel [`Classifier`]): BatchNorm folded, torchvision's evaluation preprocessing
//! (`Resize(256)`, `CenterCrop(224)`, ImageNet normalisation), softmax, top-k with the ImageNet
//! class names.

use crate::error::{Result, TrainError};
use crate::infer::{classifier_probs, InferenceEngine};
use crate::tasks::predict::{check_top_k, ranked, Prediction};
use kestrel_data::image_io::load_rgb;
use kestrel_data::CenterCropEval;
use kestrel_nn::imagenet;
use kestrel_nn::Classifier;
use std::path::PathBuf;

/// [`predict_imagenet_on`] on kestrel-runtime.
pub fn predict_imagenet(
    model: Classifier,
    images: &[PathBuf],
    top_k: usize,
) -> Result<Vec<Prediction>> {
    predict_imagenet_on(model, images, top_k, InferenceEngine::Runtime)
}

/// Classifies `images` with `model`: a 1000-way model is taken to be in torchvision's ImageNet
/// class order and gets its class names; any other class count is labelled `class <i>`. Every image is read and preprocessed before any is classified, so a bad file fails
/// the call naming that file. The model is folded ([`Classifier::fold_bn`]) and run in eval
/// mode on the device it lives on, or exported to kestrel-runtime (`engine`).
pub fn predict_imagenet_on(
    model: Classifier,
    images: &[PathBuf],
    top_k: usize,
    engine: InferenceEngine,
) -> Result<Vec<Prediction>> {
    check_top_k(top_k)?;
    let transform = CenterCropEval::IMAGENET;
    let side = transform.crop as usize;
    let mut x = Vec::with_capacity(images.len() * 3 * side * side);
    for path in images {
        transform.push_chw(&load_rgb(path)?, &mut x).map_err(|e| {
            TrainError::BadInput(format!("{}: cannot preprocess ({e})", path.display()))
        })?;
    }
    let classes = model.num_classes();
    // The engine runs the images in its own batches (`InferenceEngine::batch`).
    let probs = classifier_probs(model, x, images.len(), side, &engine)?;
    Ok(images
        .iter()
        .zip(probs.chunks_exact(classes))
        .map(|(path, row)| Prediction {
            image: path.clone(),
            top: ranked(row, 0..classes, top_k, |c| {
                imagenet::class_label(c, classes)
            }),
            boxes: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;
    use burn::tensor::Distribution;
    use burn::tensor::{Device, Tensor, TensorData};
    use kestrel_nn::layers::fold::MapConvBnAct;
    use kestrel_nn::{Arch, ClassifierSpec};

    fn spec(num_classes: usize) -> ClassifierSpec {
        ClassifierSpec {
            arch: Arch::MobileNetV2,
            width: 0.35,
            num_classes,
            activation: Default::default(),
        }
    }

    /// Random running statistics so that folding matters.
    fn model(num_classes: usize) -> Classifier {
        let device = Device::flex();
        spec(num_classes)
            .init(&device)
            .map_conv_bn_act(&mut |mut unit: kestrel_nn::ConvBnAct| {
                if let Some(bn) = unit.bn.as_mut() {
                    let [c] = bn.running_var.value().dims();
                    let u =
                        |lo, hi| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), &device);
                    bn.running_mean = burn::module::RunningState::new(u(-0.5, 0.5));
                    bn.running_var = burn::module::RunningState::new(u(0.5, 2.0));
                }
                unit
            })
    }

    fn write_images(dir: &std::path::Path) -> Vec<PathBuf> {
        [(300u32, 200u32), (120, 90)]
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| {
                let img = image::RgbImage::from_fn(w, h, |x, y| {
                    image::Rgb([(x * 3 + y) as u8, (y * 5) as u8, (i * 100) as u8])
                });
                let path = dir.join(format!("img{i}.png"));
                img.save(&path).unwrap();
                path
            })
            .collect()
    }

    /// The ranking and probabilities equal the unfolded model's softmax on independently
    /// preprocessed inputs, with ImageNet names.
    #[test]
    fn ranks_the_unfolded_models_probabilities_with_imagenet_names() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_images(dir.path());
        let model = model(1000);
        let device = Device::flex();
        let mut x = Vec::new();
        for p in &images {
            CenterCropEval::IMAGENET
                .push_chw(&load_rgb(p).unwrap(), &mut x)
                .unwrap();
        }
        let input = Tensor::<4>::from_data(TensorData::new(x, [2, 3, 224, 224]), &device);
        let want: Vec<f32> = softmax(model.forward(input), 1)
            .into_data()
            .try_to_vec()
            .unwrap();
        let preds = predict_imagenet(model, &images, 5).unwrap();
        assert_eq!(preds.len(), 2);
        for (i, p) in preds.iter().enumerate() {
            assert_eq!(p.image, images[i]);
            let row = &want[i * 1000..(i + 1) * 1000];
            let best = (0..1000)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .unwrap();
            assert_eq!(p.top.len(), 5);
            assert!((p.top[0].prob - f64::from(row[best])).abs() < 1e-4);
            for t in &p.top {
                assert_eq!(t.label, imagenet::LABELS[t.class]);
                assert!((t.prob - f64::from(row[t.class])).abs() < 1e-4, "{t:?}");
            }
            assert!(p.top.windows(2).all(|w| w[0].prob >= w[1].prob));
        }
    }

    /// kestrel-runtime (the default) and Burn rank the same classes with the same probabilities.
    #[test]
    fn both_engines_give_the_same_top_k() {
        let dir = tempfile::tempdir().unwrap();
        let images = write_images(dir.path());
        let m = model(10);
        let rt = predict_imagenet_on(m.clone(), &images, 3, InferenceEngine::Runtime).unwrap();
        let burn = predict_imagenet_on(m, &images, 3, InferenceEngine::Burn).unwrap();
        for (a, b) in rt.iter().zip(&burn) {
            let ca: Vec<_> = a.top.iter().map(|t| t.class).collect();
            let cb: Vec<_> = b.top.iter().map(|t| t.class).collect();
            assert_eq!(ca, cb);
            for (x, y) in a.top.iter().zip(&b.top) {
                assert!((x.prob - y.prob).abs() < 1e-4, "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let mut images = write_images(dir.path());
        // Not ImageNet's 1000 classes: numbered labels.
        let p = predict_imagenet(model(10), &images, 3).unwrap();
        assert_eq!(p[0].top.len(), 3);
        assert!(p[0]
            .top
            .iter()
            .all(|t| t.label == format!("class {}", t.class)));
        let e = predict_imagenet(model(1000), &images, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("top-k"), "{e}");
        images.push(dir.path().join("missing.png"));
        let e = predict_imagenet(model(1000), &images, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.png"), "{e}");
    }
}
