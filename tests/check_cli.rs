//! `salve check` as a user runs it: the real binary against the policy files under
//! tests/fixtures/policies. Each error must be printed as `file:line:col: message`, with
//! the path exactly as given on the command line, so the expected positions below were
//! read off the fixtures by hand (lines and columns count from 1, as editors do).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const FIXTURES: &str = "tests/fixtures/policies";

/// What one run of the binary did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The diagnostic lines: a multi-line message (an invalid regex with its caret
    /// diagram) continues on lines indented under its first one.
    fn diagnostics(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|l| !l.starts_with(char::is_whitespace))
            .collect()
    }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `salve ARGS...` from the crate root, so relative paths print as written here.
fn salve<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_salve"))
        .args(args)
        .current_dir(manifest_dir())
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the salve binary runs");
    let run = Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        run.code != Some(101) && !run.stderr.contains("panicked"),
        "salve panicked on user input\n{}",
        run.context()
    );
    run
}

fn check<S: AsRef<std::ffi::OsStr>>(paths: &[S]) -> Run {
    let mut args: Vec<&std::ffi::OsStr> = vec!["check".as_ref()];
    args.extend(paths.iter().map(AsRef::as_ref));
    salve(&args)
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

/// Asserts that the run failed with exactly these diagnostics, in this order: each
/// starts with `prefix: ` (`file:line:col`) and contains every given substring.
fn assert_errors(run: &Run, expected: &[(&str, &[&str])]) {
    assert_eq!(
        run.code,
        Some(1),
        "check must fail with exit code 1\n{}",
        run.context()
    );
    let lines = run.diagnostics();
    for (i, (prefix, needles)) in expected.iter().enumerate() {
        let line = lines.get(i).unwrap_or_else(|| {
            panic!(
                "diagnostic #{} (`{prefix}: ...`) is missing\n{}",
                i + 1,
                run.context()
            )
        });
        assert!(
            line.starts_with(&format!("{prefix}: ")),
            "diagnostic #{} should start with `{prefix}: `, got: {line}\n{}",
            i + 1,
            run.context()
        );
        for needle in *needles {
            assert!(
                line.contains(needle),
                "diagnostic #{} should contain `{needle}`, got: {line}\n{}",
                i + 1,
                run.context()
            );
        }
    }
    assert_eq!(
        lines.len(),
        expected.len(),
        "unexpected extra diagnostics\n{}",
        run.context()
    );
}

/// A scratch directory under the system temp dir, removed when dropped (also when the
/// test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "salve-check-cli-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("temp dir is writable");
        TempDir(path)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("temp file is writable");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ACTION_KINDS: &str =
    "(expected one of: start, stop, restart, tryRestart, reload, resetFailed, kill, enable, disable, notify, exec, nginxEdit, phpFpmEdit, alignFastcgiPass, deletePod, rolloutRestart, scale, raiseMemoryLimit, cordon, configMapEdit, drain, ready, setWeight)";

#[test]
fn valid_policies_print_one_line_each_and_exit_zero() {
    let nginx = fixture("valid/nginx-down.yaml");
    let haproxy = fixture("valid/haproxy-no-backend.yaml");
    let run = check(&[&nginx, &haproxy]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    // One line per policy, in command-line order, each naming where it was defined.
    assert_eq!(
        run.stdout,
        format!(
            "ok {nginx}:5 nginx-down (target nginx.service, 2 trigger(s), actions: resetFailed, restart, dry run)\n\
             ok {haproxy}:5 haproxy-no-backend (target haproxy.service, 1 trigger(s), actions: reload, kill, exec)\n"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn example_policies_in_policies_dir_are_valid() {
    let dir = manifest_dir().join("policies");
    let mut documents = 0;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("policies/ exists") {
        let path = entry.expect("policies/ is readable").path();
        let is_yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if path.is_file() && is_yaml {
            let text = std::fs::read_to_string(&path).expect("policy is readable");
            documents += text
                .lines()
                .filter(|l| l.trim_end() == "kind: RemediationPolicy")
                .count();
            files.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(documents > 0, "policies/ holds no policy documents");

    let run = check(&["policies"]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), documents, "{}", run.context());
    for line in &lines {
        assert!(line.starts_with("ok policies/"), "{}", run.context());
    }
    for file in &files {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("ok policies/{file}:"))),
            "no ok line for policies/{file}\n{}",
            run.context()
        );
    }
}

#[test]
fn multi_document_file_and_directory_load() {
    let dir = fixture("multi");
    let run = check(&[&dir]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    // Files in name order (README.md is not a policy file and is skipped), documents in
    // file order; the `---` before the first document, the `...` end marker and the
    // trailing empty document are all accepted.
    let expected = format!(
        "ok {dir}/single.yml:4 sshd-down (target ssh.service, 1 trigger(s), actions: restart)\n\
         ok {dir}/three-policies.yaml:5 redis-down (target redis-server.service, 1 trigger(s), actions: restart)\n\
         ok {dir}/three-policies.yaml:14 redis-disabled (target redis-server.service, 1 trigger(s), actions: enable)\n\
         ok {dir}/three-policies.yaml:24 cron-stuck (target cron.service, 1 trigger(s), actions: kill, start)\n"
    );
    assert_eq!(run.stdout, expected, "{}", run.context());

    // A file named again, also under another spelling, is loaded once: no duplicates.
    let again = check(&[
        dir.clone(),
        format!("{dir}/single.yml"),
        format!("./{dir}/three-policies.yaml"),
    ]);
    assert_eq!(again.code, Some(0), "{}", again.context());
    assert_eq!(again.stdout, expected, "{}", again.context());

    // The multi-document file on its own.
    let file = format!("{dir}/three-policies.yaml");
    let run = check(&[&file]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert_eq!(run.stdout.lines().count(), 3, "{}", run.context());
}

#[test]
fn yaml_syntax_error_is_located() {
    let file = fixture("errors/syntax-error.yaml");
    let run = check(&[&file]);
    // `  name: broken: yes`: the second `:` is at column 15.
    assert_errors(
        &run,
        &[(
            &format!("{file}:4:15"),
            &["YAML syntax error", "mapping values are not allowed"],
        )],
    );
    assert!(
        run.stderr.contains("1 error(s) in 1 file(s)"),
        "{}",
        run.context()
    );
}

#[test]
fn unknown_field_names_its_position_and_suggests_the_close_one() {
    let file = fixture("errors/unknown-field.yaml");
    let run = check(&[&file]);
    let known = "(expected one of: cooldown, maxAttempts, window, backoff, maxUnhealthy, settle)";
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:13:5"),
                &[
                    "unknown field in guard: `cooldwn`",
                    "did you mean `cooldown`?",
                    known,
                ],
            ),
            (
                &format!("{file}:14:5"),
                &["`max_attempts`", "did you mean `maxAttempts`?", known],
            ),
            (&format!("{file}:15:5"), &["`colour`", known]),
        ],
    );
    let colour = run.diagnostics()[2];
    assert!(
        !colour.contains("did you mean"),
        "nothing is close to `colour`: {colour}"
    );
}

#[test]
fn every_error_of_a_file_is_reported_not_only_the_first() {
    let file = fixture("errors/many-errors.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:5:9"),
                &["invalid policy name \"Many_Errors\""],
            ),
            (
                &format!("{file}:8:11"),
                &["invalid unit name \"nginx\"", "\"nginx.service\""],
            ),
            (
                &format!("{file}:10:29"),
                &["unknown active state `faild`", "did you mean `failed`?"],
            ),
            (&format!("{file}:11:12"), &["invalid duration \"soon\""]),
            (
                &format!("{file}:12:7"),
                &[
                    "unknown field in a trigger condition: `htp`",
                    "did you mean `http`?",
                ],
            ),
            (&format!("{file}:13:47"), &["invalid regex"]),
            (
                &format!("{file}:15:7"),
                &["unknown action `restrat`", "did you mean `restart`?"],
            ),
            (
                &format!("{file}:17:18"),
                &["expected a whole number, found the string \"lots\""],
            ),
            (
                &format!("{file}:18:14"),
                &["0.5 is out of range: expected 1 to 10"],
            ),
            (
                &format!("{file}:19:11"),
                &["expected true or false, found the string \"yes\""],
            ),
        ],
    );
    assert!(run.stdout.contains("unclosed group"), "{}", run.context());
    assert!(
        run.stderr.contains("10 error(s) in 1 file(s)"),
        "{}",
        run.context()
    );
}

#[test]
fn duplicate_policy_names_across_files_are_errors() {
    let first = fixture("duplicate/first.yaml");
    let second = fixture("duplicate/second.yaml");
    // Each file is valid on its own.
    for file in [&first, &second] {
        let run = check(&[file]);
        assert_eq!(run.code, Some(0), "{}", run.context());
    }
    // Together, the second definition is the error, and it names the first.
    let run = check(&[&first, &second]);
    assert_errors(
        &run,
        &[(
            &format!("{second}:17:9"),
            &[&format!(
                "duplicate policy name \"shared-name\" (first defined at {first}:4)"
            )],
        )],
    );
    // The other way round, the clash is reported in the other file.
    let run = check(&[&second, &first]);
    assert_errors(
        &run,
        &[(
            &format!("{first}:4:9"),
            &[&format!(
                "duplicate policy name \"shared-name\" (first defined at {second}:17)"
            )],
        )],
    );
}

/// The line of a policy is the line of its `name`, also when `labels` come first.
#[test]
fn duplicate_name_is_located_at_the_name_even_after_labels() {
    let a = fixture("duplicate/labels-first-a.yaml");
    let b = fixture("duplicate/labels-first-b.yaml");
    let run = check(&[&a]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(
        run.stdout.starts_with(&format!("ok {a}:6 labelled ")),
        "the policy is named on line 6\n{}",
        run.context()
    );
    let run = check(&[&a, &b]);
    assert_errors(
        &run,
        &[(
            &format!("{b}:7:9"),
            &[&format!(
                "duplicate policy name \"labelled\" (first defined at {a}:6)"
            )],
        )],
    );
}

#[test]
fn empty_trigger_and_actions_are_errors() {
    let file = fixture("errors/empty-trigger-and-actions.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:8:12"),
                &["empty list: at least one trigger condition is required"],
            ),
            (
                &format!("{file}:9:12"),
                &["empty list: at least one action is required"],
            ),
            // `trigger:` with nothing after it: the missing value sits after the colon.
            (
                &format!("{file}:18:10"),
                &[
                    "expected a list of trigger conditions",
                    "found nothing (null)",
                ],
            ),
            (
                &format!("{file}:19:10"),
                &["expected a list of actions", "found nothing (null)"],
            ),
        ],
    );
}

#[test]
fn guard_values_out_of_range_are_errors() {
    let file = fixture("errors/guard-out-of-range.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:10:18"),
                &["0 is out of range: expected 1 to 1000"],
            ),
            (
                &format!("{file}:11:14"),
                &["0.5 is out of range: expected 1 to 10"],
            ),
            (
                &format!("{file}:21:21"),
                &["11 is out of range: expected 1 to 10"],
            ),
            (
                &format!("{file}:32:15"),
                &["cooldown (2h) must not exceed window (1h)"],
            ),
            // No window given: the default one (10m) still bounds the cooldown.
            (
                &format!("{file}:43:22"),
                &["cooldown (11m) must not exceed window (10m)"],
            ),
        ],
    );
}

#[test]
fn bad_duration_and_regex_are_errors() {
    let file = fixture("errors/bad-duration-and-regex.yaml");
    let run = check(&[&file]);
    let hint = "(write e.g. 250ms, 10s, 5m, 1h)";
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:10:12"),
                &["invalid duration \"5\"", "time unit needed", hint],
            ),
            (
                &format!("{file}:11:51"),
                &[
                    "invalid duration \"3 parsecs\"",
                    "unknown time unit \"parsecs\"",
                    hint,
                ],
            ),
            (&format!("{file}:11:71"), &["must be longer than 0s"]),
            (&format!("{file}:12:55"), &["invalid regex"]),
            (&format!("{file}:13:55"), &["invalid regex"]),
            (
                &format!("{file}:13:77"),
                &["invalid duration \"soon\"", hint],
            ),
            (
                &format!("{file}:16:39"),
                &["invalid duration \"-1s\"", hint],
            ),
        ],
    );
    // The regex crate's own explanation follows each regex error, indented.
    assert!(
        run.stdout.contains("unclosed character class"),
        "{}",
        run.context()
    );
    assert!(run.stdout.contains("unclosed group"), "{}", run.context());
}

#[test]
fn unknown_action_and_trigger_kind_suggest_a_fix() {
    let file = fixture("errors/unknown-action-and-trigger-kind.yaml");
    let run = check(&[&file]);
    let trigger_kinds =
        "(expected one of: unit, http, log, pod, workload, node, alert, phpFpm, for)";
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:9:7"),
                &[
                    "unknown field in a trigger condition: `htpp`",
                    "did you mean `http`?",
                    trigger_kinds,
                ],
            ),
            (&format!("{file}:10:7"), &["`journal`", trigger_kinds]),
            (
                &format!("{file}:11:29"),
                &["unknown active state `faild`", "did you mean `failed`?"],
            ),
            (
                &format!("{file}:13:7"),
                &[
                    "unknown action `restat`",
                    "did you mean `restart`?",
                    ACTION_KINDS,
                ],
            ),
            // Case and separators are forgiven when suggesting.
            (
                &format!("{file}:14:7"),
                &["unknown action `tryrestart`", "did you mean `tryRestart`?"],
            ),
            (
                &format!("{file}:15:7"),
                &["unknown action `reboot`", ACTION_KINDS],
            ),
            // A bare action name: the fix is spelt out.
            (&format!("{file}:16:7"), &["write `restart: {}`"]),
            (
                &format!("{file}:17:23"),
                &["unknown signal \"SIGKIL\"", "SIGKILL"],
            ),
            (
                &format!("{file}:19:7"),
                &["unknown action `notfy`", "did you mean `notify`?"],
            ),
        ],
    );
    let lines = run.diagnostics();
    for i in [1, 5] {
        assert!(
            !lines[i].contains("did you mean"),
            "nothing is close enough to suggest: {}",
            lines[i]
        );
    }
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    let file = fixture("errors/wrong-types.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:5:11"),
                &["expected a mapping of labels, found a list"],
            ),
            (
                &format!("{file}:8:11"),
                &["expected a string, found a list"],
            ),
            (
                &format!("{file}:10:49"),
                &["expected a list of HTTP status codes, found the number 502"],
            ),
            // Quoted, so a string even though it looks like a number.
            (
                &format!("{file}:10:64"),
                &["expected a whole number, found the string \"3\""],
            ),
            (
                &format!("{file}:11:55"),
                &["expected a whole number, found the number 2.5"],
            ),
            (
                &format!("{file}:12:12"),
                &["expected a duration such as 10s or 5m, found a mapping"],
            ),
            (
                &format!("{file}:13:12"),
                &["expected a list of actions", "found a mapping"],
            ),
            (
                &format!("{file}:15:14"),
                &["expected a number, found the string \"two\""],
            ),
            (
                &format!("{file}:16:18"),
                &["expected a whole number, found the boolean true"],
            ),
            (
                &format!("{file}:17:11"),
                &["expected true or false, found the number 1"],
            ),
            (
                &format!("{file}:21:11"),
                &["expected a mapping for metadata, found the string \"wrong-types-2\""],
            ),
            (
                &format!("{file}:22:7"),
                &["expected a mapping for spec, found a list"],
            ),
        ],
    );
}

#[test]
fn missing_path_is_a_clear_error() {
    let missing = fixture("does-not-exist.yaml");
    let valid = fixture("valid/nginx-down.yaml");
    let run = check(&[&valid, &missing]);
    assert_errors(
        &run,
        &[(&missing, &["cannot read", "No such file or directory"])],
    );

    // A directory without any policy file is an error too, not a silent success.
    let empty = TempDir::new("empty-dir");
    let dir = empty.0.display().to_string();
    let run = check(&[&dir]);
    assert_errors(&run, &[(&dir, &["no policy files found"])]);
}

/// A policy whose parts are filled in by `body`, for inputs that must get as far as
/// decoding.
fn policy_with(body: &str) -> String {
    format!(
        "apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata:\n  name: nasty\n\
         spec:\n  target: {{ unit: nginx.service }}\n  trigger: [{{ unit: {{ activeState: [failed] }} }}]\n{body}"
    )
}

#[test]
fn garbage_input_never_panics() {
    let deep_flow = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep_block: String = (0..300).map(|i| " ".repeat(2 * i) + "-\n").collect();
    let deep_labels = format!("{}1{}", "{a: ".repeat(200), "}".repeat(200));
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("empty.yaml", Vec::new()),
        ("only-separator.yaml", b"---\n".to_vec()),
        ("separators-and-comments.yaml", b"---\n# nothing\n---\n...\n".to_vec()),
        ("scalar.yaml", b"just some words\n".to_vec()),
        ("number.yaml", b"42\n".to_vec()),
        (
            "list.yaml",
            b"- apiVersion: salve.dev/v1alpha1\n- kind: RemediationPolicy\n".to_vec(),
        ),
        (
            "binaryish.yaml",
            "\u{1}\u{2}\u{7f}\u{feff}\u{fffd}\u{200b}é漢字🙂: \u{0}\u{1b}[31m\n"
                .as_bytes()
                .to_vec(),
        ),
        ("not-utf8.yaml", vec![0xff, 0xfe, 0x00, b'a', b':', 0xc3]),
        ("deep-flow.yaml", deep_flow.into_bytes()),
        ("deep-block.yaml", deep_block.into_bytes()),
        (
            "deep-labels.yaml",
            format!("apiVersion: salve.dev/v1alpha1\nkind: RemediationPolicy\nmetadata:\n  name: x\n  labels: {deep_labels}\n")
                .into_bytes(),
        ),
        (
            "huge-numbers.yaml",
            policy_with(&format!(
                "  actions: [{{ restart: {{}} }}]\n  guard:\n    maxAttempts: 1{}\n    backoff: 1e999\n    cooldown: 99999999999999999999999h\n    window: 18446744073709551615s\n",
                "0".repeat(400)
            ))
            .into_bytes(),
        ),
        (
            "huge-status.yaml",
            policy_with(
                "  actions: [{ restart: {} }]\n  verify: { http: { url: \"http://x:99999999/\", status: [-1, 18446744073709551616, 1e3] } }\n",
            )
            .into_bytes(),
        ),
        (
            "tabs.yaml",
            b"apiVersion:\tsalve.dev/v1alpha1\nkind:\tRemediationPolicy\nmetadata:\n\tname: x\n".to_vec(),
        ),
        (
            "anchors.yaml",
            policy_with("  actions: &acts [{ restart: {} }]\n  escalate: *acts\n").into_bytes(),
        ),
        ("unknown-alias.yaml", b"a: *nowhere\n".to_vec()),
        ("self-alias.yaml", b"a: &a [*a]\n".to_vec()),
        ("alias-key.yaml", b"k: &k spec\n*k : 1\n".to_vec()),
        (
            "complex-keys.yaml",
            b"? [a, b]\n: c\n{x: 1}: 2\n~: 3\n1: 4\n".to_vec(),
        ),
        (
            "tags.yaml",
            policy_with("  actions: !!seq [!custom { restart: !!map {} }]\n").into_bytes(),
        ),
        (
            "long-key.yaml",
            format!("{}: 1\n", "k".repeat(100_000)).into_bytes(),
        ),
        (
            "crlf.yaml",
            policy_with("  actions: [{ restart: {} }]\n")
                .replace('\n', "\r\n")
                .into_bytes(),
        ),
        (
            "duplicate-keys.yaml",
            policy_with("  actions: [{ restart: {} }]\n  actions: [{ stop: {} }]\n").into_bytes(),
        ),
        (
            "odd-actions.yaml",
            policy_with(
                "  actions:\n    -\n    - []\n    - { restart: {}, stop: {} }\n    - {}\n    - exec: { command: [] }\n    - exec: { command: [relative, x] }\n    - kill: { whom: everyone, signal: [9] }\n",
            )
            .into_bytes(),
        ),
        (
            "odd-urls.yaml",
            policy_with(
                "  actions: [{ notify: { webhook: \"http://[::1\" } }, { notify: { webhook: \"http://:0\" } }, { notify: { webhook: \"http://é/ü\" } }]\n",
            )
            .into_bytes(),
        ),
    ];

    let dir = TempDir::new("garbage");
    for (name, contents) in &inputs {
        let path = dir.write(name, contents).display().to_string();
        let run = check(&[&path]);
        assert!(
            matches!(run.code, Some(0 | 1)),
            "{name}: expected exit 0 or 1\n{}",
            run.context()
        );
        if run.code == Some(1) {
            let lines = run.diagnostics();
            assert!(!lines.is_empty(), "{name}: exit 1 without a message");
            for line in lines {
                assert!(
                    line.starts_with(&format!("{path}:")),
                    "{name}: every error names the file: {line}"
                );
            }
        }
    }
}

#[test]
fn exec_command_without_a_valid_argument_is_an_error_not_a_panic() {
    let file = fixture("errors/exec-without-valid-argument.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[(
            &format!("{file}:11:25"),
            &["expected a string, found nothing (null)"],
        )],
    );
}

/// Each alias stands for a copy of its anchor: nine levels of ten aliases would be a
/// billion nodes from a file of under 1 KB. `check` must refuse it quickly instead of
/// exhausting memory (run here under a 1 GiB address-space limit, so a failure costs
/// the machine nothing).
#[cfg(unix)]
#[test]
fn alias_bomb_is_rejected_without_exhausting_memory() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..9 {
        let alias = format!("*a{}", level - 1);
        let items = [alias.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    let dir = TempDir::new("alias-bomb");
    let path = dir.write("bomb.yaml", &text);
    let output = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" check \"$1\"")
        .arg(env!("CARGO_BIN_EXE_salve"))
        .arg(&path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("sh runs");
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a clean rejection (exit 1), got {:?}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn schema_command_prints_the_committed_schema() {
    let run = salve(&["schema"]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    let committed =
        std::fs::read_to_string(manifest_dir().join("deploy/schema/remediationpolicy.schema.json"))
            .expect("the schema is committed");
    assert!(
        run.stdout == committed,
        "`salve schema` differs from deploy/schema/remediationpolicy.schema.json: run `make schema`"
    );
}

#[test]
fn config_edit_mistakes_are_located_and_explained() {
    let file = fixture("bad-config-edits.yaml");
    let at = |line_col: &str| format!("{file}:{line_col}");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (&at("11:15"), &["must be an absolute path"]),
            (&at("14:26"), &["did you mean `fastcgi_buffer_size`"]),
            (&at("15:59"), &["`64x` is not an nginx size"]),
            (&at("17:45"), &["value must not contain ';'"]),
            (&at("18:26"), &["salve does not set `include`"]),
            (&at("19:16"), &["did you mean `reload`"]),
            (&at("22:15"), &["without them"]),
            (&at("24:20"), &["did you mean `pm.max_children`"]),
            (
                &at("26:20"),
                &["salve does not set `php_admin_value[auto_prepend_file]`"],
            ),
            (&at("37:5"), &["a config edit needs `verify`"]),
            (&at("42:5"), &["escalate may not edit configs"]),
        ],
    );
}

#[test]
fn durations_past_a_year_are_errors_at_their_place() {
    let file = fixture("errors/too-long-durations.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (
                &format!("{file}:10:12"),
                &["duration \"367d\" is too long", "at most"],
            ),
            (
                &format!("{file}:12:46"),
                &["duration \"300000000000y\" is too long"],
            ),
        ],
    );
}

#[test]
fn exec_env_entries_must_be_name_equals_value() {
    let file = fixture("errors/exec-bad-env.yaml");
    let run = check(&[&file]);
    assert_errors(
        &run,
        &[
            (&format!("{file}:11:76"), &["\"1BAD=x\" is not NAME=value"]),
            (
                &format!("{file}:11:86"),
                &["\"NOEQUALS\" is not NAME=value"],
            ),
        ],
    );
}

/// A config nested 200,000 blocks deep once overflowed the stack (exit 134); now it is
/// a config salve cannot read: exit 2, with the place and the limit.
#[test]
fn diagnose_refuses_a_config_nested_too_deep_with_its_place() {
    let dir = TempDir::new("deep");
    let depth = 200_000;
    let nginx = dir.write(
        "nginx.conf",
        format!("{}{}", "http {".repeat(depth), "}".repeat(depth)),
    );
    let fpm = dir.write("php-fpm.conf", "[global]\n");
    let run = salve(&[
        "diagnose".as_ref(),
        "--nginx-conf".as_ref(),
        nginx.as_os_str(),
        "--fpm-conf".as_ref(),
        fpm.as_os_str(),
        "--no-systemd".as_ref(),
    ]);
    assert_eq!(run.code, Some(2), "{}", run.context());
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("nested more than 64 levels"),
        "{}",
        run.context()
    );
    assert!(
        all.contains(&format!("{}:1:", nginx.display())),
        "{}",
        run.context()
    );
}

#[test]
fn a_custom_resource_exported_from_a_cluster_passes_check() {
    let file = fixture("kubernetes/exported-from-cluster.yaml");
    let run = check(&[&file]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    assert!(
        run.stdout
            .contains("php-fpm-down (target php8.2-fpm.service"),
        "{}",
        run.context()
    );
    // Server-set fields are known by name: a misspelt one is still an error.
    let dir = TempDir::new("exported");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("  resourceVersion:", "  resourceVersoin:");
    let bad = dir.write("bad.yaml", text);
    let run = check(&[&bad]);
    assert_eq!(run.code, Some(1), "{}", run.context());
    assert!(
        run.stdout.contains(
            "unknown field in metadata: `resourceVersoin`, did you mean `resourceVersion`?"
        ),
        "{}",
        run.context()
    );
}

#[test]
fn kubernetes_example_policies_check_and_the_host_runtimes_refuse_what_they_cannot_run() {
    let run = check(&["policies/kubernetes"]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    for line in [
        "php-deployment-unhealthy (target deployment/web/php,",
        "php-pods-unhealthy (target pods web/app=php,",
        "worker-1-unreachable (target node/worker-1,",
    ] {
        assert!(run.stdout.contains(line), "{line}\n{}", run.context());
    }

    // The agent acts on systemd units: it says so and starts nothing.
    let dir = TempDir::new("k8s-agent");
    let journal = dir.0.join("journal.jsonl");
    let run = salve(&[
        "agent".as_ref(),
        "--policies".as_ref(),
        "policies/kubernetes/php-deployment-unhealthy.yaml".as_ref(),
        "--journal".as_ref(),
        journal.as_os_str(),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.context());
    assert!(
        run.stderr.contains("policy \"php-deployment-unhealthy\" targets deployment/web/php: the host agent acts on systemd units"),
        "{}",
        run.context()
    );
    assert!(!journal.exists(), "the refused agent wrote a journal");

    // simulate replays named objects and selectors alike.
    let events = dir.write(
        "events.jsonl",
        r#"{"at": "0s", "pod": {"namespace": "web", "name": "php-7", "labels": {"app": "php"}, "containers": [{"name": "php", "waiting": "CrashLoopBackOff", "restarts": 2}]}}
{"at": "1m", "tick": {}}
"#,
    );
    let run = salve(&[
        "simulate".as_ref(),
        "--policies".as_ref(),
        "policies/kubernetes/php-pods-unhealthy.yaml".as_ref(),
        "--events".as_ref(),
        events.as_os_str(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.context());
    // The example is a dry run: after its 30s debounce it says what it would do to the
    // pod, by name.
    assert!(
        run.stdout.contains(r#""at":"30s","policy":"php-pods-unhealthy","target":"pod/web/php-7","decision":"skip","reason":"dry_run""#),
        "{}",
        run.context()
    );
    let run = salve(&[
        "simulate".as_ref(),
        "--policies".as_ref(),
        "policies/kubernetes/php-deployment-unhealthy.yaml".as_ref(),
        "--events".as_ref(),
        events.as_os_str(),
    ]);
    assert_eq!(run.code, Some(0), "{}", run.context());
}
