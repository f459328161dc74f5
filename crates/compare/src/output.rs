//! compare.json (the [`Comparison`] as it is) and compare.md (what a person reads in a pull
//! request).

use std::fmt::Write as _;

use crate::analysis::{Comparison, FigureComparison, ScenarioComparison, Verdict};
use crate::figures::Scale;

/// compare.json: the comparison, pretty-printed, with a final newline.
pub fn json(c: &Comparison) -> String {
    let mut s = serde_json::to_string_pretty(c).expect("a comparison serializes");
    s.push('\n');
    s
}

/// A value in its figure's unit, for people.
pub fn format_value(v: Option<f64>, unit: &str) -> String {
    let Some(v) = v else { return "-".into() };
    match unit {
        "bytes" => gp_plot::render::format_bytes(Some(v.max(0.0).round() as u64)),
        "ms" if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        "ms" => format!("{v:.0} ms"),
        "s" => format!("{v:.2} s"),
        "%" => format!("{v:.1} %"),
        u => format!("{v:.3} {u}"),
    }
}

/// A change in its change unit: `+12.3 %` or `-4.0 pt`.
pub fn format_change(v: Option<f64>, f: &FigureComparison) -> String {
    let Some(v) = v else { return "-".into() };
    // Absurd values (a hostile report) in scientific notation rather than 300 digits.
    let number = if v.abs() >= 1e6 {
        format!("{v:+.2e}")
    } else if f.scale == Scale::Difference && f.change_unit != "points" {
        format!("{v:+.3}")
    } else {
        format!("{v:+.1}")
    };
    match (f.scale, f.change_unit.as_str()) {
        (Scale::Ratio, _) => format!("{number} %"),
        (_, "points") => format!("{number} pt"),
        (_, unit) => format!("{number} {unit}"),
    }
}

fn format_p(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(p) if p >= 0.001 => format!("{p:.3}"),
        Some(p) => format!("{p:.1e}"),
    }
}

fn verdict_cell(f: &FigureComparison) -> String {
    match f.verdict {
        Verdict::Better | Verdict::Worse => format!("**{}**", f.verdict.text()),
        v => v.text().to_string(),
    }
}

/// What the data could have shown: the larger of the minimum detectable effect and the
/// minimum effect asked for.
fn detectable(f: &FigureComparison, c: &Comparison) -> String {
    if f.verdict == Verdict::NotCompared {
        return "-".into();
    }
    let min = match f.scale {
        Scale::Ratio => c.options.min_effect * 100.0,
        Scale::Difference => c.options.min_effect_points,
    };
    match f.mde {
        None => "nothing: too few runs".into(),
        Some(m) => {
            let v = m.max(min);
            match f.scale {
                Scale::Ratio => format!("±{v:.1} %"),
                Scale::Difference => format!(
                    "±{v:.1} {}",
                    if f.change_unit == "points" {
                        "pt"
                    } else {
                        &f.change_unit
                    }
                ),
            }
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// compare.md.
pub fn markdown(c: &Comparison) -> String {
    let mut md = String::new();
    let o = &c.options;
    let _ = writeln!(md, "# gp-compare: {} against {}\n", c.b.label, c.a.label);
    for arm in [&c.a, &c.b] {
        let _ = writeln!(
            md,
            "- **{}**: {} — {}; {}; host(s): {}",
            escape(&arm.label),
            if arm.sources.is_empty() {
                "(in memory)".to_string()
            } else {
                arm.sources
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            arm.runs.text(),
            if arm.qemu.is_empty() {
                "QEMU not named".to_string()
            } else {
                arm.qemu.join(", ")
            },
            arm.hosts.join(", ")
        );
    }
    let _ = writeln!(
        md,
        "\nA figure is **better** or **worse** when the permutation test's q (Benjamini-Hochberg \
         over {} tests) is below {}, the change of medians is at least {} % ({} points for \
         percentages) and its {:.0} % interval excludes 0. Bootstrap: {} replicates, seed {}. \
         See docs/gp-compare.md.\n",
        c.family_size,
        o.alpha,
        o.min_effect * 100.0,
        o.min_effect_points,
        o.confidence * 100.0,
        o.resamples,
        o.seed
    );
    if c.same_runs {
        let _ = writeln!(
            md,
            "> **A/A**: both sides are the same runs. Every verdict is \"no detectable change\" \
             by construction; read the *could detect* column and the runs-needed table: they \
             are this machine's noise floor.\n"
        );
    }
    let compared = c.compared_figures();
    let _ = writeln!(
        md,
        "**{} worse, {} better, {} no detectable change** ({} figures in {} scenarios; {} only in {}, {} only in {})\n",
        c.regressions.len(),
        c.improvements,
        compared.saturating_sub(c.regressions.len() + c.improvements),
        compared,
        c.scenarios.len(),
        c.only_in_a.len(),
        c.a.label,
        c.only_in_b.len(),
        c.b.label
    );
    if !c.regressions.is_empty() {
        let _ = writeln!(md, "## Worse\n");
        for r in &c.regressions {
            let unit = if r.change_unit == "percent" {
                "%"
            } else {
                "pt"
            };
            let _ = writeln!(
                md,
                "- {} / `{}`: {:+.1} {unit}",
                escape(&r.scenario),
                r.figure,
                r.change
            );
        }
        md.push('\n');
    }
    for sc in &c.scenarios {
        scenario_md(&mut md, sc, c);
    }
    noise_md(&mut md, c);
    for (label, list) in [(&c.a.label, &c.only_in_a), (&c.b.label, &c.only_in_b)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## Only in {} (not compared)\n", escape(label));
        for s in list {
            let _ = writeln!(
                md,
                "- {}: {}{}",
                escape(&s.name),
                s.runs.text(),
                s.skipped
                    .as_ref()
                    .map(|r| format!(" (skipped: {r})"))
                    .unwrap_or_default()
            );
        }
        md.push('\n');
    }
    md
}

fn scenario_md(md: &mut String, sc: &ScenarioComparison, c: &Comparison) {
    let _ = writeln!(md, "## {}\n", escape(&sc.name));
    let comp = &sc.completion;
    let _ = writeln!(
        md,
        "{}: {}; {}: {}{}\n",
        escape(&c.a.label),
        sc.runs_a.text(),
        escape(&c.b.label),
        sc.runs_b.text(),
        if comp.verdict == Verdict::NoChange {
            String::new()
        } else {
            format!(
                " — completion **{}** ({:+.0} points, p {})",
                comp.verdict.text(),
                comp.change_points.unwrap_or(0.0),
                format_p(Some(comp.p))
            )
        }
    );
    let _ = writeln!(
        md,
        "| figure | {} median (n) | {} median (n) | change | {:.0} % interval | p | q | verdict | could detect |",
        escape(&c.a.label),
        escape(&c.b.label),
        c.options.confidence * 100.0
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for f in &sc.figures {
        if f.a.n == 0 && f.b.n == 0 {
            continue;
        }
        let interval = match f.ci {
            Some([lo, hi]) => format!(
                "{} … {}",
                format_change(Some(lo), f),
                format_change(Some(hi), f)
            ),
            None => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} ({}) | {} ({}) | {} | {} | {} | {} | {}{} | {} |",
            f.label,
            format_value(f.a.median, &f.unit),
            f.a.n,
            format_value(f.b.median, &f.unit),
            f.b.n,
            format_change(f.change, f),
            interval,
            format_p(f.p),
            format_p(f.q),
            verdict_cell(f),
            f.reason
                .as_ref()
                .map(|r| format!(" ({})", escape(r)))
                .unwrap_or_default(),
            detectable(f, c),
        );
    }
    let missing: Vec<&str> = sc
        .figures
        .iter()
        .filter(|f| f.a.n == 0 && f.b.n == 0)
        .map(|f| f.label.as_str())
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(md, "\nNo run has: {}.", missing.join(", "));
    }
    for h in sc.figures.iter().filter(|f| !f.per_host.is_empty()) {
        let _ = writeln!(md, "\n{} per host:", h.label);
        for ph in &h.per_host {
            let _ = writeln!(
                md,
                "- {}: {} ({}) → {} ({}): {}",
                escape(&ph.host),
                format_value(Some(ph.median_a), &h.unit),
                ph.n_a,
                format_value(Some(ph.median_b), &h.unit),
                ph.n_b,
                format_change(Some(ph.change), h)
            );
        }
    }
    for note in &sc.notes {
        let _ = writeln!(md, "\n- {}", escape(note));
    }
    md.push('\n');
}

fn noise_md(md: &mut String, c: &Comparison) {
    let targets: Vec<String> = c
        .options
        .detect
        .iter()
        .map(|d| format!("{}", (d * 100.0 * 1000.0).round() / 1000.0))
        .collect();
    let _ = writeln!(md, "## Noise and runs needed\n");
    let _ = writeln!(
        md,
        "Run-to-run noise of each arm (coefficient of variation) and the runs per arm needed to \
         detect a change of {} % ({} points for percentages) with power {:.0} % at the level one \
         change alone must reach here ({:.2e}), when both arms grow alike.\n",
        targets.join(" / "),
        targets.join(" / "),
        c.options.power * 100.0,
        c.mde_alpha
    );
    let _ = writeln!(
        md,
        "| scenario | figure | CV {} | CV {} | runs per arm for {} % |",
        escape(&c.a.label),
        escape(&c.b.label),
        targets.join(" / ")
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for sc in &c.scenarios {
        for f in sc
            .figures
            .iter()
            .filter(|f| f.verdict != Verdict::NotCompared)
        {
            let cv = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0} %"));
            let runs: Vec<String> = f
                .runs_needed
                .iter()
                .map(|r| r.runs_per_arm.map_or("-".into(), |n| n.to_string()))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                escape(&sc.name),
                f.label,
                cv(f.a.cv_pct),
                cv(f.b.cv_pct),
                runs.join(" / ")
            );
        }
    }
    md.push('\n');
}
