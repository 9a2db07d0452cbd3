use super::*;
use kestrel_nn::Arch;

#[test]
fn toml_round_trips_and_unknown_keys_are_named() {
    let cfg = TrainConfig::default();
    let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
    let e = toml::from_str::<TrainConfig>("epochz = 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("epochz"), "{e}");
    // Missing keys take the defaults.
    let partial: TrainConfig = toml::from_str("epochs = 3").unwrap();
    assert_eq!(partial.epochs, 3);
    assert_eq!(partial.model, "mobilenet-v2");
    // The new keys round-trip, as names.
    let cfg = TrainConfig {
        augment: Augment::Standard,
        balance: Balance::Oversample,
        interleave: 3,
        skip_bad: true,
        ..TrainConfig::default()
    };
    let text = cfg.to_toml();
    assert!(text.contains("augment = \"standard\""), "{text}");
    assert!(text.contains("balance = \"oversample\""), "{text}");
    assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), cfg);
}

#[test]
fn augment_reads_names_and_the_old_booleans() {
    let read = |t: &str| toml::from_str::<TrainConfig>(t).map(|c| c.augment);
    assert_eq!(read("augment = true").unwrap(), Augment::Dihedral);
    assert_eq!(read("augment = false").unwrap(), Augment::None);
    assert_eq!(read("augment = \"standard\"").unwrap(), Augment::Standard);
    let e = read("augment = \"rotate\"").unwrap_err().to_string();
    assert!(e.contains("rotate") && e.contains("flips"), "{e}");
    let e = "smot".parse::<Balance>().unwrap_err().to_string();
    assert!(e.contains("`balance`") && e.contains("oversample"), "{e}");
    let cfg = TrainConfig {
        balance: Balance::Smote,
        augment: Augment::Standard,
        ..TrainConfig::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("balance") && e.contains("smote"), "{e}");
}

#[test]
fn segment_runs_take_fcn_names_and_refuse_image_only_options() {
    let cfg = TrainConfig::segment_default();
    let (_, arch) = cfg.validate().unwrap();
    assert_eq!(arch, Arch::MobileNetV2);
    let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
    // A classifier name is not a segmentation model, and the reverse.
    let bad = TrainConfig {
        model: "mobilenet-v2".into(),
        ..cfg.clone()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("fcn8s-"), "{e}");
    let bad = TrainConfig {
        model: "fcn8s-mobilenet-v2".into(),
        ..TrainConfig::default()
    };
    assert!(bad.validate().is_err());
    for (balance, augment, field) in [
        (Balance::Oversample, Augment::Dihedral, "balance"),
        (Balance::None, Augment::Standard, "augment"),
    ] {
        let bad = TrainConfig {
            balance,
            augment,
            ..cfg.clone()
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    // Configurations written before segmentation existed read with the default upsampler.
    let old: TrainConfig = toml::from_str("task = \"classify\"").unwrap();
    assert_eq!(old.upsampler, UpsamplerKind::Bilinear);
}

#[test]
fn loop_settings_default_round_trip_and_are_checked() {
    let cfg = TrainConfig::default();
    assert_eq!(cfg.grad_log_every, 50);
    assert_eq!(cfg.val_metric_name(), "accuracy");
    assert_eq!(TrainConfig::segment_default().val_metric_name(), "miou");
    // Unset options are left out of config.toml, so older runs' files still compare equal.
    let text = cfg.to_toml();
    assert!(
        !text.contains("patience") && !text.contains("clip_grad_norm"),
        "{text}"
    );
    let set = TrainConfig {
        clip_grad_norm: Some(1.5),
        patience: Some(3),
        val_metric: Some("macro_f1".into()),
        grad_log_every: 7,
        ..TrainConfig::default()
    };
    assert_eq!(toml::from_str::<TrainConfig>(&set.to_toml()).unwrap(), set);
    set.validate().unwrap();
    for (bad, field) in [
        (
            TrainConfig {
                val_metric: Some("miou".into()),
                ..TrainConfig::default()
            },
            "accuracy, macro_f1",
        ),
        (
            TrainConfig {
                clip_grad_norm: Some(0.0),
                ..TrainConfig::default()
            },
            "clip-grad-norm",
        ),
        (
            TrainConfig {
                patience: Some(0),
                ..TrainConfig::default()
            },
            "patience",
        ),
        (
            TrainConfig {
                explode_above: f64::NAN,
                ..TrainConfig::default()
            },
            "explode_above",
        ),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
}

#[test]
fn optimiser_keys_default_round_trip_and_validate() {
    // A configuration written before these keys existed reads with the defaults.
    let old: TrainConfig =
        toml::from_str("optimizer = \"sgd\"\nweight_decay = 1e-4\nlr = 0.1\n").unwrap();
    assert_eq!(old.optimizer_kind(), OptimKind::Sgd);
    assert_eq!(old.schedule, ScheduleKind::Cosine);
    assert_eq!(
        (old.l1, old.decay_norm_and_bias, old.zero_init_residual),
        (0.0, false, false)
    );
    assert_eq!(old.optim, OptimSettings::default());
    let text = "schedule = \"step\"\nstep_size = 5\ngamma = 0.5\nl1 = 1e-5\nzero_init_residual = true\n\
                [optim]\nkind = \"adam\"\n[optim.groups.head]\nmatch = \"classifier.\"\nlr_scale = 10.0\nweight_decay = 0.0\n";
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    assert_eq!(cfg.optimizer_kind(), OptimKind::Adam);
    assert_eq!(
        (cfg.schedule, cfg.step_size, cfg.gamma),
        (ScheduleKind::Step, 5, 0.5)
    );
    assert!(cfg.validate().is_ok());
    let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
    let json: TrainConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(json, cfg);
    let mut set = TrainConfig::default();
    set.set_optimizer_kind(OptimKind::Nesterov);
    assert_eq!(
        (set.optimizer_kind(), set.optimizer),
        (OptimKind::Nesterov, OptimizerKind::Sgd)
    );
    for (field, bad) in [
        (
            "step_size",
            TrainConfig {
                step_size: 0,
                ..cfg.clone()
            },
        ),
        (
            "gamma",
            TrainConfig {
                gamma: 1.5,
                ..cfg.clone()
            },
        ),
        (
            "l1",
            TrainConfig {
                l1: -1.0,
                ..cfg.clone()
            },
        ),
    ] {
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    let e = toml::from_str::<TrainConfig>("[optim.groups.head]\nmatch = \"fc.\"\nwd = 0.0\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`head`") && e.contains("wd"), "{e}");
}

#[test]
fn multitask_runs_take_fcn_names_and_check_their_weights() {
    let cfg = TrainConfig::multitask_default();
    assert_eq!(cfg.validate().unwrap().1, Arch::MobileNetV2);
    assert_eq!((cfg.resolution, cfg.epochs), (64, 12));
    let cfg = TrainConfig {
        weighting: WeightingKind::GradNorm,
        task_weights: vec![0.5, 2.0],
        cascade: true,
        ..cfg
    };
    let text = cfg.to_toml();
    assert!(text.contains("weighting = \"gradnorm\""), "{text}");
    assert!(text.contains("task = \"multitask\""), "{text}");
    assert_eq!(toml::from_str::<TrainConfig>(&text).unwrap(), cfg);
    let bad = TrainConfig {
        weighting: WeightingKind::Fixed,
        task_weights: vec![1.0],
        ..cfg.clone()
    };
    let e = bad.validate().unwrap_err().to_string();
    assert!(e.contains("task_weights"), "{e}");
    let bad = TrainConfig {
        balance: Balance::Weights,
        ..cfg
    };
    assert!(bad.validate().unwrap_err().to_string().contains("balance"));
}

#[test]
fn validation_names_the_field() {
    let cfg = TrainConfig {
        model: "alexnet".into(),
        ..TrainConfig::default()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("alexnet") && e.contains("mobilenet-v2"), "{e}");
    let cfg = TrainConfig {
        batch_size: 1,
        ..TrainConfig::default()
    };
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("batch-size"));
}

/// `auto` keeps quarter turns for `shapes` (orientation-free classes) and flips real images
/// horizontally only; `flips`, the old name, reads as `dihedral`.
#[test]
fn auto_augmentation_suits_the_data() {
    let resolve = |data: &str| Augment::Auto.for_data(&data.parse().unwrap());
    assert_eq!(resolve("shapes"), Augment::Dihedral);
    assert_eq!(resolve("shapes:n=100"), Augment::Dihedral);
    for real in ["folder:/data/pets", "seg:/data/voc", "idx:/data/fashion"] {
        assert_eq!(resolve(real), Augment::Hflip, "{real}");
    }
    let spec = "idx:/data/fashion".parse().unwrap();
    assert_eq!(Augment::Dihedral.for_data(&spec), Augment::Dihedral);
    assert_eq!("flips".parse::<Augment>().unwrap(), Augment::Dihedral);
    assert_eq!("hflip".parse::<Augment>().unwrap(), Augment::Hflip);
    assert_eq!(TrainConfig::default().augment, Augment::Auto);
}

/// `activation`: ReLU6 by default and for configurations written before the key; `relu` is a
/// MobileNetV2 classifier's only, anything else asked for it is refused naming the key and the
/// model; the value round-trips as a name.
#[test]
fn activation_is_relu6_by_default_and_relu_only_for_a_mobilenet_v2_classifier() {
    use kestrel_nn::HiddenActivation;
    let old: TrainConfig = toml::from_str("model = \"mobilenet-v2\"\nwidth = 0.25\n").unwrap();
    assert_eq!(old.activation, HiddenActivation::Relu6);
    assert!(TrainConfig::default()
        .to_toml()
        .contains("activation = \"relu6\""));
    let relu: TrainConfig = toml::from_str("activation = \"relu\"").unwrap();
    assert_eq!(relu.activation, HiddenActivation::Relu);
    assert!(relu.validate().is_ok());
    assert_eq!(
        toml::from_str::<TrainConfig>(&relu.to_toml()).unwrap(),
        relu
    );
    let e = toml::from_str::<TrainConfig>("activation = \"gelu\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("gelu"), "{e}");
    for (task, model) in [
        (Task::Classify, "resnet18"),
        (Task::Classify, "mobilenet-v1"),
        (Task::Segment, "fcn8s-mobilenet-v2"),
        (Task::Multitask, "fcn32s-resnet18"),
    ] {
        let cfg = TrainConfig {
            task,
            model: model.into(),
            activation: HiddenActivation::Relu,
            ..TrainConfig::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("activation") && e.contains(model), "{e}");
        let relu6 = TrainConfig {
            activation: HiddenActivation::Relu6,
            ..cfg
        };
        assert!(relu6.validate().is_ok(), "{model}");
    }
}
