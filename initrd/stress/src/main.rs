//! `stress`: see the library docs and docs/stress.md.

fn main() {
    std::process::exit(stress::run::main())
}
