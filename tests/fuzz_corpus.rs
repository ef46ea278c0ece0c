//! The fuzz targets' inputs, in the normal test suite: every file of `fuzz/corpus/<target>/`
//! (the minimized corpus cargo-fuzz built) and `fuzz/regressions/<target>/` (inputs that once
//! crashed, kept for ever) runs through the same harness as the fuzzer (`fuzz/harness.rs`), on
//! stable Rust. CI runs this; the fuzzing itself (`fuzz/README.md`) needs nightly and time.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

/// Runs every input of `target` through `run`; returns how many ran.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for folder in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else { continue };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        files.sort();
        for file in files {
            let input = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(outcome.is_ok(), "{} crashes the {target} target", file.display());
            count += 1;
        }
    }
    count
}

macro_rules! corpus_test {
    ($name:ident) => {
        #[test]
        fn $name() {
            let ran = replay(stringify!($name), harness::$name);
            assert!(ran > 0, "no corpus for the {} target", stringify!($name));
        }
    };
}

corpus_test!(websocket);
corpus_test!(rest);
corpus_test!(xhr);
corpus_test!(protocol);
corpus_test!(fixture);
corpus_test!(config);
