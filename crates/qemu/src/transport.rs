//! The migration transport, one vocabulary for every tool that takes `--transport`.

/// How the two QEMUs talk during migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Transport {
    Unix,
    Tcp,
    Rdma,
}

impl Transport {
    /// The name used on command lines and in the `launch` record's `transport` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Tcp => "tcp",
            Transport::Rdma => "rdma",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_match_clap_values() {
        for t in Transport::value_variants() {
            assert_eq!(t.to_possible_value().unwrap().get_name(), t.as_str());
        }
    }
}
