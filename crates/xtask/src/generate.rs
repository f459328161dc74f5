//! Man pages and shell completions, generated from the clap definitions so they cannot drift from
//! `--help`; and `gp-stress`'s hand-written page, which a test keeps in step with stress's usage.

use clap::Command;
pub use clap_complete::Shell;

/// The completion shells installed.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// gp-stress's man page (stress has no clap; `tests::stress_page_matches_usage` checks it).
pub const STRESS_PAGE: &str = include_str!("../man/gp-stress.1");

/// The man page (section 1, roff) of `cmd`.
pub fn man_page(cmd: Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .expect("rendering into memory cannot fail");
    out
}

/// The completion script of `cmd` for `shell`.
pub fn completion(shell: Shell, mut cmd: Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The file name of a completion script for `name` in its shell's standard directory.
pub fn completion_file(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name.to_string(),
    }
}

/// Long options (`--name`) named in a usage text or a roff page, sorted, without duplicates.
pub fn long_options(text: &str) -> Vec<String> {
    // roff: `\-` is a hyphen, `\fB` and friends switch fonts.
    let mut text = text.replace("\\-", "-");
    for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
        text = text.replace(font, " ");
    }
    let mut found: Vec<String> = text
        .match_indices("--")
        .filter(|(i, _)| *i == 0 || !text.as_bytes()[i - 1].is_ascii_alphanumeric())
        .map(|(i, _)| {
            text[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .map(|name| format!("--{name}"))
        .collect();
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::TOOLS;

    fn tool(name: &str) -> Command {
        TOOLS
            .iter()
            .find(|t| t.name == name)
            .expect("a known tool")
            .command()
    }

    #[test]
    fn every_man_page_names_the_tool_and_each_of_its_long_options() {
        for t in TOOLS {
            let cmd = t.command();
            let page = String::from_utf8(man_page(cmd.clone())).unwrap();
            assert!(page.starts_with(".ie"), "{}: not roff", t.name);
            assert!(page.contains(&format!(".TH {} 1", t.name)), "{}", t.name);
            let in_page = long_options(&page);
            for arg in cmd.get_arguments() {
                if let Some(long) = arg.get_long().filter(|_| !arg.is_hide_set()) {
                    let long = format!("--{long}");
                    assert!(in_page.contains(&long), "{}: {long} missing", t.name);
                }
            }
        }
    }

    #[test]
    fn gp_migrate_page_and_bash_completion_have_its_options() {
        let page = String::from_utf8(man_page(tool("gp-migrate"))).unwrap();
        assert!(long_options(&page).contains(&"--bandwidth".to_string()));
        let bash = String::from_utf8(completion(Shell::Bash, tool("gp-migrate"))).unwrap();
        assert!(bash.contains("--bandwidth"), "{bash}");
        assert!(
            bash.lines()
                .any(|l| l.trim_start().starts_with("complete -F ")
                    && l.trim_end().ends_with(" gp-migrate")),
            "{bash}"
        );
        let zsh = String::from_utf8(completion(Shell::Zsh, tool("gp-migrate"))).unwrap();
        assert!(zsh.starts_with("#compdef gp-migrate"), "{zsh}");
        assert!(zsh.contains("--bandwidth"), "{zsh}");
        let fish = String::from_utf8(completion(Shell::Fish, tool("gp-migrate"))).unwrap();
        assert!(fish.contains("complete -c gp-migrate"), "{fish}");
        assert!(fish.contains("-l bandwidth"), "{fish}");
    }

    #[test]
    fn completion_file_names_follow_each_shell() {
        assert_eq!(completion_file(Shell::Bash, "gp-plot"), "gp-plot");
        assert_eq!(completion_file(Shell::Zsh, "gp-plot"), "_gp-plot");
        assert_eq!(completion_file(Shell::Fish, "gp-plot"), "gp-plot.fish");
    }

    #[test]
    fn long_options_reads_usage_and_roff() {
        assert_eq!(
            long_options("  --a-b X  -h, --help \\-\\-wss x--no"),
            ["--a-b", "--help", "--wss"]
        );
    }

    /// The hand-written page must document exactly the options stress's own usage lists.
    #[test]
    fn stress_page_matches_usage() {
        let usage = long_options(stress::settings::USAGE);
        assert!(usage.len() >= 9, "{usage:?}");
        assert_eq!(long_options(STRESS_PAGE), usage);
        assert!(STRESS_PAGE.contains(".TH GP-STRESS 1"));
        // The kernel command line keys, which are how the guest gets the same settings.
        for key in stress::settings::USAGE
            .split(|c: char| c.is_whitespace() || c == ',')
            .map(|w| w.trim_end_matches('.'))
            .filter(|w| w.ends_with('=') && w.len() > 1)
        {
            assert!(STRESS_PAGE.contains(key), "{key} missing from gp-stress.1");
        }
    }
}
