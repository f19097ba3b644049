//! The web pages in a real headless Chromium, against the real binary: sign in, start a run
//! from its form (a field error first), watch the timeline change as the run goes, be refused
//! as the starter where the approval asks for someone else, approve
//! as a second person, pause and resume, see the run succeed; a step's output that carries
//! markup stays text; a viewer gets no controls and is refused them by the server.

use crate::browser_support::{Browser, start_browser};
use crate::support::{Running, WebServe};
use std::time::Duration;

const FLOW: &str = r#"version: 1
name: web-flow
description: A run to drive from the web pages.
inputs:
  message: { type: string, description: what the approval asks about }
  count: { type: integer, default: 1 }
steps:
  - id: prepare
    exec:
      script: |
        sleep 2
        printf '%s\n' '<script>window.__xss=1</script>' '"><img src=x onerror="window.__xss=2;alert(2)">'
    outputs:
      said: .stdout
  - id: gate
    needs: [prepare]
    approval:
      prompt: "Go on with {{inputs.message}}?"
      distinct_from_starter: true
  - id: work
    needs: [gate]
    exec: { command: [sleep, 6] }
  - id: finish
    needs: [work]
    exec: { command: [echo, done] }
"#;

const LONG: Duration = Duration::from_secs(60);

fn serve() -> Running {
    WebServe::new()
        .write("flow.yaml", FLOW)
        .config("schedules: []\nhttp:\n  users_file: users.yaml\n  runbooks: [flow.yaml]\n")
        .start()
}

async fn status(browser: &Browser) -> String {
    browser.text_now("#run-status").await
}

#[test]
fn a_run_is_started_watched_approved_paused_resumed_and_succeeds_in_chromium() {
    let serve = serve();
    let base = serve.url.clone();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let browser = start_browser().await;

        // Sign in as the operator who starts the run.
        browser.sign_in(&base, "otto", "operator-pass").await;
        browser.goto(&format!("{base}/runbooks")).await;
        browser.click("li[data-runbook='web-flow'] a").await;

        // A field error first: the message is missing and the count is not a number.
        browser.fill("div[data-input='count'] input", "abc").await;
        browser.click("#start-form button[type=submit]").await;
        let count_error = browser.text("div[data-input='count'] .field-error").await;
        assert!(count_error.contains("abc") || count_error.contains("integer"), "{count_error}");
        let message_error = browser.text("div[data-input='message'] .field-error").await;
        assert!(!message_error.is_empty());
        assert_eq!(
            browser.script("return document.querySelector(\"div[data-input='count'] input\").value").await,
            "abc",
            "the value given is kept"
        );
        browser.screenshot("start-form-errors").await;

        // Corrected: the run starts and its page opens.
        browser.fill("div[data-input='count'] input", "2").await;
        browser.fill("div[data-input='message'] input", "the <b>upgrade</b>").await;
        browser.click("#start-form button[type=submit]").await;
        let run_id = browser.text("#run-id").await;
        browser
            .wait_for("the message `queued`", LONG, || async {
                browser.text_now(".done").await.contains("queued")
            })
            .await;
        let first = status(&browser).await;
        assert!(!first.contains("waiting"), "{first}");

        // The page is not reloaded: the timeline and the status change as events arrive.
        browser.script("window.__stayed = true; return null").await;
        browser
            .wait_for("the run waiting for its approval", LONG, || async {
                status(&browser).await.contains("waiting")
            })
            .await;
        assert_eq!(
            browser.script("return window.__stayed === true").await,
            serde_json::Value::Bool(true),
            "the page was reloaded"
        );
        assert!(browser.exists("#live svg.timeline g.lane[data-step='prepare'][data-status='succeeded']").await);
        assert!(browser.exists(".dag g.node[data-step='gate']").await);
        let following = browser.text_now("#live-state").await;
        assert!(following.starts_with("Live"), "not following the event stream: {following}");
        browser.screenshot("run-waiting").await;

        // What the step printed is shown as text, and nothing in it ran.
        let printed = browser.text("section.step[data-step='prepare'] pre.stdout").await;
        assert!(printed.contains("<script>window.__xss=1</script>"), "{printed}");
        assert!(printed.contains("<img src=x onerror="), "{printed}");
        assert_eq!(
            browser.script(
                "return [document.querySelectorAll('img[src=\"x\"]').length, \
                 [...document.scripts].filter(s => s.textContent.includes('__xss')).length, \
                 typeof window.__xss]"
            ).await,
            serde_json::json!([0, 0, "undefined"])
        );
        assert!(browser.client.get_alert_text().await.is_err(), "a dialog was opened");
        // The prompt's input was escaped too.
        let prompt = browser.text("form.approval .prompt").await;
        assert!(prompt.contains("<b>upgrade</b>"), "{prompt}");

        // The starter may not approve: the step asks for someone else.
        browser.fill("form.approval textarea[name=comment]", "my own change").await;
        browser.click("form.approval button[value=approve]").await;
        browser
            .wait_for("the starter's approval refused", LONG, || async {
                browser.text_now("#problem").await.contains("other than whoever started the run")
            })
            .await;
        browser.screenshot("starter-refused").await;
        assert!(status(&browser).await.contains("waiting"));

        // A viewer sees the run without controls, and the server refuses her a control.
        browser.sign_out().await;
        browser.sign_in(&base, "vera", "viewer-pass").await;
        browser.goto(&format!("{base}/runs/{run_id}")).await;
        assert!(!browser.exists("#controls form").await);
        let refused = browser
            .client
            .execute_async(
                &format!(
                    "const done = arguments[arguments.length - 1]; \
                     const csrf = document.querySelector('input[name=csrf]').value; \
                     const body = new URLSearchParams({{csrf, reason: 'curious', step: 'gate', decision: 'approve'}}); \
                     (async () => {{ const answers = []; \
                       for (const what of ['pause', 'approve']) {{ \
                         const r = await fetch('/runs/{run_id}/' + what, {{method: 'POST', body}}); \
                         answers.push(r.status); }} \
                       done(answers); }})();"
                ),
                Vec::new(),
            )
            .await
            .expect("the viewer's requests");
        assert_eq!(refused, serde_json::json!([403, 403]));

        // Approved by a second person (the starter was otto).
        browser.sign_out().await;
        browser.sign_in(&base, "olga", "operator2-pass").await;
        browser.goto(&format!("{base}/runs/{run_id}")).await;
        browser.fill("form.approval textarea[name=comment]", "checked the savepoints").await;
        browser.click("form.approval button[value=approve]").await;
        browser
            .wait_for("the message `Approved`", LONG, || async {
                browser.text_now(".done").await.contains("Approved")
            })
            .await;

        // Paused while `work` runs: the run parks once the step ends.
        browser
            .wait_for("the work step running", LONG, || async {
                browser.exists("#live g.lane[data-step='work'][data-status='running']").await
                    && browser.exists("#pause-form").await
            })
            .await;
        browser.fill("#pause-reason", "the on-call asked to wait").await;
        browser.click("#pause-form button[type=submit]").await;
        browser
            .wait_for("the message `Pause asked`", LONG, || async {
                browser.text_now(".done").await.contains("Pause asked")
            })
            .await;
        browser
            .wait_for("the run paused", LONG, || async {
                status(&browser).await.contains("interrupted")
            })
            .await;
        assert!(browser.exists("#live svg.timeline g.control").await, "the pause is on the timeline");
        assert!(!browser.exists("#live g.lane[data-step='finish']").await, "finish ran while paused");
        browser.screenshot("run-paused").await;

        // Resumed: a worker of serve takes it up, and it succeeds.
        browser
            .wait_for("the resume form", LONG, || async { browser.exists("#resume-form").await })
            .await;
        browser.fill("#resume-reason", "go on").await;
        browser.click("#resume-form button[type=submit]").await;
        browser
            .wait_for("the run succeeded", LONG, || async {
                status(&browser).await.contains("succeeded")
            })
            .await;
        assert!(browser.exists("#live g.lane[data-step='finish'][data-status='succeeded']").await);
        browser.screenshot("run-succeeded").await;

        // The journal says who did what.
        let events = std::process::Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(["runs", "show", &run_id, "--format", "json"])
            .env("XDG_STATE_HOME", serve.path(".state"))
            .env_remove("RUNBOOK_STORE")
            .current_dir(serve.dir.path())
            .output()
            .expect("runbook runs show");
        let shown = String::from_utf8_lossy(&events.stdout);
        assert!(shown.contains("\"started_by\": \"otto\""), "{shown}");
        assert!(shown.contains("\"by\": \"olga\""), "{shown}");
        assert!(shown.contains("the on-call asked to wait"), "{shown}");

        browser.close().await;
    });
}
