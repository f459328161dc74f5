//! Parsed options turned back into the command line that parses to them, and the test that keeps
//! the two in step.
//!
//! `guestperf` and `gp-batch` parse gp-launch's and gp-migrate's option structs with the stages'
//! own definitions (flattened into their command lines), then run the stages as child processes:
//! each struct must turn back into an argv. [`Argv`] writes one, naming options by their clap id
//! (the field name) so the option names are written once, in the struct. Options equal to their
//! default are left out, so a printed pipeline stays short and each stage keeps owning its
//! defaults.
//!
//! [`assert_round_trip`] is the test: for every option the parser knows, a value other than the
//! default must be written and parse back to the same struct. An option added to a struct later
//! and not written fails it, by name.

use std::ffi::{OsStr, OsString};
use std::fmt::{Debug, Display};

use clap::{ArgAction, Command, Parser, ValueEnum};

/// An argument list written from parsed options.
#[derive(Debug)]
pub struct Argv {
    command: Command,
    args: Vec<OsString>,
}

impl Argv {
    /// An empty list for the options of `command` (the struct's `T::command()`).
    pub fn new(command: Command) -> Self {
        Argv {
            command,
            args: Vec::new(),
        }
    }

    /// `--NAME` of the option with clap id `id`. An unknown id is a bug in the caller, found by
    /// its round-trip test: it panics.
    fn long(&self, id: &str) -> String {
        let arg = self
            .command
            .get_arguments()
            .find(|a| a.get_id() == id)
            .unwrap_or_else(|| panic!("{} has no option with id {id}", self.command.get_name()));
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("option {id} has no long name"));
        format!("--{long}")
    }

    /// `--NAME` when `on`.
    pub fn flag(&mut self, id: &str, on: bool) -> &mut Self {
        if on {
            let long = self.long(id);
            self.args.push(long.into());
        }
        self
    }

    /// `--NAME VALUE`, always.
    pub fn value(&mut self, id: &str, value: impl Into<OsString>) -> &mut Self {
        let long = self.long(id);
        self.args.extend(option_arg(&long, value.into()));
        self
    }

    /// `--NAME VALUE` when `value` differs from `default`, the value written by `show`.
    pub fn changed<T: PartialEq>(
        &mut self,
        id: &str,
        value: &T,
        default: &T,
        show: impl FnOnce(&T) -> OsString,
    ) -> &mut Self {
        if value != default {
            self.value(id, show(value));
        }
        self
    }

    /// `--NAME VALUE` when there is a value.
    pub fn some<T>(
        &mut self,
        id: &str,
        value: Option<&T>,
        show: impl FnOnce(&T) -> OsString,
    ) -> &mut Self {
        if let Some(v) = value {
            self.value(id, show(v));
        }
        self
    }

    /// `--NAME VALUE` once per value, in order.
    pub fn each<T>(&mut self, id: &str, values: &[T], show: impl Fn(&T) -> OsString) -> &mut Self {
        for v in values {
            self.value(id, show(v));
        }
        self
    }

    pub fn finish(self) -> Vec<OsString> {
        self.args
    }
}

/// Makes a `#[derive(clap::Args)]` struct a [`clap::Parser`] with a command of its own: what a
/// stage's option struct needs to be both parsed by the stage and flattened by the wrappers.
///
/// The struct itself carries no doc comment and no `#[command]` attribute (clap would apply them
/// to the command it is flattened into); `$command` gives the stage's name, about and the like.
///
/// ```
/// #[derive(Debug, clap::Args)]
/// struct Opts {
///     #[arg(long, default_value_t = 1)]
///     cpus: u32,
/// }
/// gp_stage::stage_parser!(Opts, clap::Command::new("gp-example").about("An example"));
///
/// use clap::Parser;
/// assert_eq!(Opts::try_parse_from(["gp-example", "--cpus", "2"]).unwrap().cpus, 2);
/// ```
#[macro_export]
macro_rules! stage_parser {
    ($ty:ty, $command:expr) => {
        impl ::clap::CommandFactory for $ty {
            fn command() -> ::clap::Command {
                <Self as ::clap::Args>::augment_args($command)
            }

            fn command_for_update() -> ::clap::Command {
                <Self as ::clap::Args>::augment_args_for_update($command)
            }
        }

        impl ::clap::Parser for $ty {}
    };
}

/// `--name value` as two words, or `--name=value` when the value starts with `-`: as two words,
/// `--mem -1G` would make the parser read `-1G` as an option of its own and say "unexpected
/// argument '-1'", where `--mem=-1G` gets its error about --mem.
pub fn option_arg(long: &str, value: OsString) -> Vec<OsString> {
    if value.as_encoded_bytes().starts_with(b"-") {
        let mut joined = OsString::from(format!("{long}="));
        joined.push(&value);
        vec![joined]
    } else {
        vec![long.into(), value]
    }
}

/// A value written with `Display` (numbers, strings).
pub fn display<T: Display + ?Sized>(v: &T) -> OsString {
    v.to_string().into()
}

/// A path or other OS string, as it is (no lossy conversion).
pub fn os<T: AsRef<OsStr> + ?Sized>(v: &T) -> OsString {
    v.as_ref().to_owned()
}

/// An enum value by the name clap parses.
pub fn enum_value<T: ValueEnum>(v: &T) -> OsString {
    v.to_possible_value()
        .expect("a value the parser produced has a name")
        .get_name()
        .into()
}

/// Checks `to_args` against `T`'s own parser, option by option, and panics listing every
/// problem.
///
/// For each option of `T::command()`: a command-line fragment setting it to something other than
/// its default is parsed, written back with `to_args`, and parsed again; the two structs must be
/// equal and the written list must name the option. Then all fragments at once. `to_args` of
/// the default struct must be empty.
///
/// `samples` gives the fragment, by clap id, for options that take a free value (`("mem",
/// &["--mem", "3G"])`; repeat the option for one that collects values). Flags need none (they
/// are set); enums need none (the first value other than the default is taken).
pub fn assert_round_trip<T>(samples: &[(&str, &[&str])], to_args: impl Fn(&T) -> Vec<OsString>)
where
    T: Parser + PartialEq + Debug,
{
    let command = T::command();
    let name = command.get_name().to_string();
    let parse = |argv: &[OsString]| {
        T::try_parse_from(std::iter::once(OsString::from(&name)).chain(argv.iter().cloned()))
    };
    let default = parse(&[]).unwrap_or_else(|e| panic!("{name} with no options: {e}"));
    let mut problems = Vec::new();
    let written = to_args(&default);
    if !written.is_empty() {
        problems.push(format!(
            "the defaults are written as {written:?}, not as nothing"
        ));
    }
    for (id, _) in samples {
        if !command.get_arguments().any(|a| a.get_id() == *id) {
            problems.push(format!("a sample is given for {id}, which is no option"));
        }
    }
    let mut everything: Vec<OsString> = Vec::new();
    for arg in command.get_arguments() {
        if matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        ) {
            continue;
        }
        let id = arg.get_id().as_str();
        let Some(long) = arg.get_long() else {
            problems.push(format!(
                "{id}: only options with a long name can be written"
            ));
            continue;
        };
        let long = format!("--{long}");
        let candidates: Vec<Vec<OsString>> =
            if let Some((_, sample)) = samples.iter().find(|(s, _)| *s == id) {
                vec![sample.iter().map(OsString::from).collect()]
            } else if !arg.get_action().takes_values() {
                vec![vec![OsString::from(&long)]]
            } else if !arg.get_possible_values().is_empty() {
                arg.get_possible_values()
                    .iter()
                    .map(|v| vec![OsString::from(format!("{long}={}", v.get_name()))])
                    .collect()
            } else {
                problems.push(format!(
                    "{long}: no sample value; add one that differs from the default"
                ));
                continue;
            };
        let found = candidates
            .into_iter()
            .find_map(|fragment| match parse(&fragment) {
                Ok(parsed) if parsed != default => Some((fragment, parsed)),
                _ => None,
            });
        let Some((fragment, parsed)) = found else {
            problems.push(format!(
                "{long}: no sample parses to something other than the default"
            ));
            continue;
        };
        let written = to_args(&parsed);
        let names = |a: &OsString| {
            let a = a.to_string_lossy();
            a == long || a.starts_with(&format!("{long}="))
        };
        if !written.iter().any(names) {
            problems.push(format!(
                "{long} is not written: {fragment:?} became {written:?}"
            ));
        }
        match parse(&written) {
            Ok(again) if again == parsed => {}
            Ok(again) => problems.push(format!(
                "{long}: {fragment:?} was written as {written:?}, which parses to {again:?}, \
                 not {parsed:?}"
            )),
            Err(e) => problems.push(format!(
                "{long}: {fragment:?} was written as {written:?}, which does not parse: {e}"
            )),
        }
        everything.extend(fragment);
    }
    // Samples may repeat an option another one requires (`--dst-host` for `--ssh-config`): the
    // last one counts here.
    let all = T::command()
        .args_override_self(true)
        .try_get_matches_from(std::iter::once(OsString::from(&name)).chain(everything.clone()))
        .and_then(|mut m| T::from_arg_matches_mut(&mut m));
    match all {
        Ok(all) => {
            let written = to_args(&all);
            match parse(&written) {
                Ok(again) if again == all => {}
                other => problems.push(format!(
                    "every option at once: {everything:?} was written as {written:?}, which \
                     parses to {other:?}"
                )),
            }
        }
        Err(e) => problems.push(format!(
            "every option at once: {everything:?} does not parse: {e}"
        )),
    }
    assert!(
        problems.is_empty(),
        "{name}: options and to_args disagree:\n  {}",
        problems.join("\n  ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
    enum Colour {
        Red,
        Green,
    }

    #[derive(Debug, PartialEq, Parser)]
    #[command(name = "t")]
    struct Opts {
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        quiet: bool,
        #[arg(long, value_enum, default_value_t = Colour::Red)]
        colour: Colour,
        #[arg(long = "extra", allow_hyphen_values = true)]
        extras: Vec<String>,
    }

    fn write(o: &Opts) -> Vec<OsString> {
        let d = Opts::try_parse_from(["t"]).unwrap();
        let mut w = Argv::new(Opts::command());
        w.changed("count", &o.count, &d.count, display)
            .some("label", o.label.as_ref(), display)
            .flag("quiet", o.quiet)
            .changed("colour", &o.colour, &d.colour, enum_value)
            .each("extras", &o.extras, display);
        w.finish()
    }

    const SAMPLES: &[(&str, &[&str])] = &[
        ("count", &["--count", "7"]),
        ("label", &["--label", "a b"]),
        ("extras", &["--extra", "-d", "--extra", "x"]),
    ];

    #[test]
    fn a_complete_writer_passes() {
        assert_round_trip::<Opts>(SAMPLES, write);
        let o = Opts::try_parse_from(["t", "--extra=-d", "--colour", "green"]).unwrap();
        assert_eq!(write(&o), ["--colour", "green", "--extra=-d"]);
    }

    #[test]
    #[should_panic(expected = "--quiet is not written")]
    fn a_forgotten_option_fails_by_name() {
        assert_round_trip::<Opts>(SAMPLES, |o: &Opts| {
            let mut o2 = Opts::try_parse_from(["t"]).unwrap();
            o2.count = o.count;
            o2.label = o.label.clone();
            o2.colour = o.colour;
            o2.extras = o.extras.clone();
            write(&o2)
        });
    }

    #[test]
    #[should_panic(expected = "--count: no sample value")]
    fn an_option_without_a_sample_fails_by_name() {
        assert_round_trip::<Opts>(&SAMPLES[1..], write);
    }

    #[test]
    #[should_panic(expected = "--label: no sample parses")]
    fn a_sample_that_is_the_default_fails() {
        assert_round_trip::<Opts>(
            &[
                ("count", &["--count", "7"]),
                ("label", &["--count", "1"]),
                ("extras", &["--extra", "x"]),
            ],
            write,
        );
    }

    #[test]
    fn a_value_starting_with_a_dash_is_joined() {
        assert_eq!(option_arg("--mem", "-1G".into()), ["--mem=-1G"]);
        assert_eq!(option_arg("--mem", "1G".into()), ["--mem", "1G"]);
    }
}
