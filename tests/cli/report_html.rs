//! `runs show --format html` rendered by a real headless Chromium: what a person sees of the
//! page (every step has a bar, failed steps are marked, the objectives show met and missed),
//! with screenshots kept as artefacts under target/tmp/report-screenshots. Chromium is a
//! prerequisite (scripts/test-all.sh installs Debian's `chromium`): without it these tests
//! fail, they are never skipped.

use crate::objectives::Drills;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs headless Chromium on `page` with `args`, in a process group of its own that is
/// stopped when it is done (or after a minute): nothing it starts outlives the test.
fn chromium(page: &Path, args: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromium is installed (scripts/test-all.sh installs Debian's chromium)");
    let group = child.id() as i32;
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Its helper processes share its group: stop whatever is left of it.
    unsafe { libc::killpg(group, libc::SIGKILL) };
    let _ = child.wait();
    let out = reader.join().unwrap_or_default();
    let status = status.expect("chromium finished within a minute");
    assert!(status.success(), "chromium failed: {status}");
    out
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).expect("the artefact directory");
    dir
}

/// Writes the HTML report of `run_id` next to the store and renders it: its DOM as Chromium
/// built it, and a screenshot kept as an artefact.
fn render(drills: &Drills, run_id: &str) -> String {
    let shown = drills.runbook(&["runs", "show", run_id, "--format", "html"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    // Self-contained and inert: no script (a live one would also stall Chromium on an
    // `alert`), nothing fetched.
    for absent in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!shown.stdout.contains(absent), "{absent} in the page");
    }
    let page = drills.dir.path().join(format!("{run_id}.html"));
    std::fs::write(&page, &shown.stdout).expect("write the page");
    let dom = chromium(&page, &["--dump-dom"]);
    let shot = artefacts().join(format!("run-{run_id}.png"));
    let _ = std::fs::remove_file(&shot);
    chromium(
        &page,
        &[
            "--window-size=1100,1600",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    // It prints: Chromium's print to PDF, as a person would save it.
    let pdf = artefacts().join(format!("run-{run_id}.pdf"));
    let _ = std::fs::remove_file(&pdf);
    chromium(
        &page,
        &[
            "--no-pdf-header-footer",
            &format!("--print-to-pdf={}", pdf.display()),
        ],
    );
    let pdf = std::fs::read(&pdf).expect("a PDF");
    assert!(pdf.starts_with(b"%PDF") && pdf.len() > 5_000, "a real PDF");
    dom
}

/// The SVG group of one step's row in the timeline, as Chromium serialises it.
fn lane<'a>(dom: &'a str, step: &str) -> &'a str {
    let start = dom
        .find(&format!("<g class=\"lane\" data-step=\"{step}\""))
        .unwrap_or_else(|| panic!("no timeline row for {step}"));
    let end = dom[start..].find("</g>").expect("the row ends") + start;
    &dom[start..end]
}

fn objective_row<'a>(dom: &'a str, name: &str) -> &'a str {
    let start = dom
        .find(&format!("<tr data-objective=\"{name}\">"))
        .unwrap_or_else(|| panic!("no objective row {name}"));
    let end = dom[start..].find("</tr>").expect("the row ends") + start;
    &dom[start..end]
}

#[test]
fn chromium_shows_a_bar_per_step_the_failed_step_marked_and_objectives_met_or_missed() {
    let drills = Drills::new();
    drills.drill("good", false);
    drills.drill("bad", true);

    let dom = render(&drills, "good");
    for step in ["disaster", "restore", "verify"] {
        let row = lane(&dom, step);
        assert!(row.contains("<rect class=\"bar succeeded\""), "{row}");
        assert!(row.contains("✓ succeeded"), "{row}");
    }
    assert!(objective_row(&dom, "rto").contains("✓ met"), "{dom}");
    assert!(objective_row(&dom, "rpo").contains("✓ met"), "{dom}");
    assert!(objective_row(&dom, "quick").contains("✗ missed"), "{dom}");
    assert!(
        objective_row(&dom, "never").contains("? not measurable"),
        "{dom}"
    );
    // A step's output is text on the page, never markup: the DOM has no script element,
    // and the text reads as the step printed it.
    assert!(!dom.contains("<script"), "a script element in the DOM");
    assert!(
        dom.contains("disaster &lt;script&gt;alert(1)&lt;/script&gt;"),
        "the output as text"
    );
    assert!(dom.contains("id=\"journal-head\">"), "the journal's hash");

    let dom = render(&drills, "bad");
    let verify = lane(&dom, "verify");
    assert!(verify.contains("data-status=\"failed\""), "{verify}");
    assert!(verify.contains("<rect class=\"bar failed\""), "{verify}");
    assert!(verify.contains("✗ failed"), "{verify}");
    assert!(lane(&dom, "restore").contains("✓ succeeded"));
    assert!(dom.contains("Error: script exited with status 1"), "{dom}");
    assert!(
        objective_row(&dom, "rto").contains("? not measurable"),
        "{dom}"
    );
}

/// Retries, a fallback and an approval that parked the run until someone answered.
const ROUGH: &str = r#"version: 1
name: rough
steps:
  - id: flaky
    exec: { script: 'echo "attempt failed" >&2; exit 1' }
    retry: { attempts: 2, delay: 100ms }
    fallback:
      exec: { command: [echo, recovered] }
  - id: gate
    needs: [flaky]
    approval: { prompt: "go on?" }
  - id: after
    needs: [gate]
    exec: { command: [echo, done] }
"#;

#[test]
fn chromium_shows_retries_the_fallback_and_the_wait_for_approval() {
    let drills = Drills::new();
    std::fs::write(drills.dir.path().join("rough.yaml"), ROUGH).expect("write the runbook");
    let parked = drills.runbook(&["run", "rough.yaml", "--run-id", "rough"]);
    assert_eq!(parked.code, 3, "{}", parked.stderr);
    let approved = drills.runbook(&["approve", "rough", "gate", "--as", "alice"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let resumed = drills.runbook(&["resume", "rough"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);

    let dom = render(&drills, "rough");
    let flaky = lane(&dom, "flaky");
    assert_eq!(
        flaky.matches("<rect class=\"bar failed\"").count(),
        2,
        "{flaky}"
    );
    assert!(
        flaky.contains("stroke-dasharray=\"5 3\""),
        "the fallback: {flaky}"
    );
    assert!(
        flaky.contains("✓ succeeded, 2 failed attempt(s), fallback"),
        "{flaky}"
    );
    let gate = lane(&dom, "gate");
    // The wait runs from the question to the answer, across the park.
    assert!(gate.contains("<rect class=\"bar approved\""), "{gate}");
    assert!(
        gate.contains("gate: waiting for approval, approved ("),
        "{gate}"
    );
    assert!(lane(&dom, "after").contains("✓ succeeded"));
    assert!(dom.contains("<line class=\"park\""), "the park is marked");
    assert!(
        dom.contains("<th>Approved</th><td><code>gate</code> by alice</td>"),
        "{dom}"
    );
    assert!(dom.contains("<th>Resumed</th>"), "{dom}");
}

#[test]
fn chromium_shows_each_control_on_the_timeline_and_among_the_facts_with_who_and_why() {
    let drills = Drills::new();
    crate::report_controls::controlled_run(&drills, "ctl");
    let dom = render(&drills, "ctl");
    // On the timeline, a flag at the moment of each control, saying who, what and why.
    let flags: Vec<&str> = dom
        .split("<g class=\"control\" data-control=\"")
        .skip(1)
        .map(|rest| rest.split("</g>").next().unwrap_or(""))
        .collect();
    assert_eq!(flags.len(), 3, "{dom}");
    assert!(flags[0].contains("by bob: retried from b"), "{}", flags[0]);
    assert!(flags[0].contains("(try b again)"), "{}", flags[0]);
    assert!(
        flags[1].contains("by alice: skipped `b` by hand"),
        "{}",
        flags[1]
    );
    assert!(
        flags[2].contains("by carol: edited the runbook"),
        "{}",
        flags[2]
    );
    // Among the facts, in the order they happened with the resumes: each retry and edit is
    // followed by the resume it led to.
    let facts: Vec<&str> = dom
        .lines()
        .filter(|l| l.starts_with("<tr><th>Control</th>") || l.starts_with("<tr><th>Resumed</th>"))
        .collect();
    assert!(facts.len() >= 3, "{dom}");
    let control_rows: Vec<&&str> = facts.iter().filter(|l| l.contains("Control")).collect();
    assert_eq!(control_rows.len(), 3, "{facts:#?}");
    assert!(
        control_rows[1].contains("(why: done by hand)"),
        "{facts:#?}"
    );
    let last_control = facts.iter().rposition(|l| l.contains("Control")).unwrap();
    assert!(
        facts[last_control + 1..]
            .iter()
            .any(|l| l.contains("Resumed")),
        "the edit's resume follows it: {facts:#?}"
    );
}
