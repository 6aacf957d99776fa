//! Build script: links what the `tts` feature's vendored espeak-ng needs from the system.

fn main() {
    // espeak-ng (compiled into espeak-rs-sys) calls libsonic for speed changes but does not
    // link it itself; Debian's libsonic-dev provides it.
    if std::env::var_os("CARGO_FEATURE_TTS").is_some() {
        println!("cargo:rustc-link-lib=sonic");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
