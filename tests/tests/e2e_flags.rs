//! The daemons' usage errors: one line naming the program and the problem, exit 2, nothing
//! started; `--help` still prints clap's whole help on stdout. A service's journal shows one
//! line per failed start instead of a usage block (`rota_proto::flags`).

use std::process::Command;

use rota_tests::bins;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_remove("ROTA_TOKEN")
        .env_remove("ROTA_COORDINATOR")
        .output()
        .expect("start the binary")
}

#[test]
fn a_bad_flag_is_one_line_naming_the_program_and_exit_2() {
    let b = bins!();
    for (bin, program, args) in [
        (b.coordinator, "rota-coordinator", &["--no-such-flag"][..]),
        (b.agent, "rota-agent", &["--no-such-flag"][..]),
        (b.coordinator, "rota-coordinator", &["--lease", "soon"][..]),
    ] {
        let out = run(bin, args);
        assert_eq!(out.status.code(), Some(2), "{program} {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{program} {args:?}: {stderr}");
        assert!(
            lines[0].starts_with(&format!("{program}: ")),
            "{program} {args:?}: {stderr}"
        );
        assert!(!lines[0].contains("error: "), "{stderr}");
        assert!(
            lines[0].contains(args[0]),
            "names the flag {}: {stderr}",
            args[0]
        );
    }
}

#[test]
fn help_prints_the_whole_usage_on_stdout_and_exits_0() {
    let b = bins!();
    for bin in [b.coordinator, b.agent] {
        let out = run(bin, &["--help"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
}
