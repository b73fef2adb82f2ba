//! Replays every input the fuzzers ever crashed on (tests/fuzz-regressions/<target>/<file>)
//! through the same target bodies (`cairn_fuzz`), so a fixed crash stays fixed. New crash inputs
//! from `fuzz/run.sh` go in the directory of their target once the bug is fixed.

use std::path::Path;

#[test]
fn fuzz_regressions_do_not_crash() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz-regressions");
    let mut failed = Vec::new();
    let mut ran = 0;
    for target in std::fs::read_dir(&dir).unwrap() {
        let target = target.unwrap().path();
        let name = target.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            cairn_fuzz::TARGETS.contains(&name.as_str()),
            "{}: not a fuzz target (known: {:?})",
            target.display(),
            cairn_fuzz::TARGETS
        );
        for input in std::fs::read_dir(&target).unwrap() {
            let input = input.unwrap().path();
            let data = std::fs::read(&input).unwrap();
            ran += 1;
            if std::panic::catch_unwind(|| cairn_fuzz::run(&name, &data)).is_err() {
                failed.push(input.display().to_string());
            }
        }
    }
    cairn_fuzz::cleanup();
    assert!(failed.is_empty(), "inputs that crash again: {failed:#?}");
    assert!(ran > 0, "no regression inputs under {}", dir.display());
}

/// The treefile target's multi-file inputs name the include tree the loader sees.
#[test]
fn treefile_inputs_split_into_files() {
    let (files, entry) = cairn_fuzz::split_files(
        "#% FILE base.yaml\ninclude: common.yaml\npackages: [a]\n#% FILE common.yaml\npackages: [b]\n",
    );
    assert_eq!(entry, Path::new("/fuzz/base.yaml"));
    let opts = cairn_treefile::LoadOptions {
        arch: Some("x86_64".into()),
        vars: Vec::new(),
    };
    let tf = cairn_treefile::load_from(&files, &entry, &opts).unwrap();
    assert_eq!(tf.packages, ["a", "b"]);
    assert_eq!(
        tf.files,
        [Path::new("/fuzz/base.yaml"), Path::new("/fuzz/common.yaml")]
    );
}
