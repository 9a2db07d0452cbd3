//! `kestrel train`'s optimiser flags and `[optim]` keys: bad values exit 2 naming the flag, key or
//! parameter group (before any data is read or any folder written).

mod common;
use common::{kestrel, stderr};

#[test]
fn bad_optimiser_settings_exit_2_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    for (flag, value, named) in [
        ("--optimizer", "rmsprop", "rmsprop"),
        ("--schedule", "linear", "linear"),
        ("--l1", "-0.5", "l1"),
        ("--weight-decay", "-1", "weight_decay"),
    ] {
        let arg = format!("{flag}={value}");
        let o = kestrel(&["train", &arg, "--out", out]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {}", stderr(&o));
        assert!(stderr(&o).contains(named), "{flag}: {}", stderr(&o));
    }
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[optim.groups.head]\nmatch = \"classifier.\"\nlr_scal = 10.0\n",
    )
    .unwrap();
    let o = kestrel(&["train", "--config", config.to_str().unwrap(), "--out", out]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`head`") && stderr(&o).contains("lr_scal"),
        "{}",
        stderr(&o)
    );
    std::fs::write(&config, "[optim]\nkind = \"nesterov\"\nmomentum = 0.0\n").unwrap();
    let o = kestrel(&["train", "--config", config.to_str().unwrap(), "--out", out]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("optim.momentum"), "{}", stderr(&o));
    assert!(!dir.path().join("run").exists());
}
