//! Running an action the way the engine does: a real context, real template rendering and
//! jq evaluation, a cancellation token, and warnings collected for inspection.

pub mod server;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runbook::actions::{Action, ActionError, ActionInput, action_for};
use runbook::template::{self, Escape, jq};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// What one run of an action gave.
pub struct Outcome {
    pub result: Result<Value, ActionError>,
    pub warnings: Vec<String>,
}

/// The context the tests render against.
pub fn context() -> Value {
    json!({
        "inputs": {
            "name": "world",
            "port": 5432,
            "list": ["a", "b"],
            "flag": true,
        },
        "steps": {},
        "step": {"id": "test", "key": "0123456789abcdef0123456789abcdef"},
    })
}

/// A runner: an action, a context, and a token the test may cancel.
pub struct Runner {
    pub action: &'static dyn Action,
    pub context: Value,
    pub cancel: CancellationToken,
}

impl Runner {
    /// The registered action for `key`, over [`context`].
    pub fn new(key: &str) -> Runner {
        Runner::with(action_for(key).unwrap_or_else(|| panic!("no action `{key}`")))
    }

    /// A specific action value (for non-default settings), over [`context`].
    pub fn with(action: &'static dyn Action) -> Runner {
        Runner {
            action,
            context: context(),
            cancel: CancellationToken::new(),
        }
    }

    /// Adds `inputs.<name>` to the context.
    pub fn input(mut self, name: &str, value: Value) -> Runner {
        self.context["inputs"][name] = value;
        self
    }

    pub async fn run(&self, body: Value) -> Outcome {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&warnings);
        let ctx = &self.context;
        let render = |value: &Value, escape: Escape| template::render_value(value, ctx, escape);
        let render_pieces = |text: &str| template::render_pieces(text, ctx);
        let eval = |expression: &str| {
            let program = jq::compile(expression).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            program.first(ctx, ctx)
        };
        let eval_over = |expression: &str, value: &Value| {
            let program = jq::compile(expression).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            program.first(value, ctx)
        };
        let warn = move |message: String| collected.lock().expect("warnings").push(message);
        let input = ActionInput {
            body: &body,
            render: &render,
            render_pieces: &render_pieces,
            eval: &eval,
            eval_over: &eval_over,
            cancel: self.cancel.clone(),
            warn: &warn,
            step_path: "tests/step",
            processes: &runbook::process::RunProcesses::default(),
            alone_in_run: true,
        };
        let result = self.action.run(input).await;
        let warnings = warnings.lock().expect("warnings").clone();
        Outcome { result, warnings }
    }

    /// Runs and expects success.
    pub async fn ok(&self, body: Value) -> Value {
        match self.run(body.clone()).await.result {
            Ok(result) => result,
            Err(e) => panic!("{body} failed: {e:?}"),
        }
    }

    /// Runs and expects a failure.
    pub async fn err(&self, body: Value) -> ActionError {
        match self.run(body.clone()).await.result {
            Ok(result) => panic!("{body} succeeded: {result}"),
            Err(e) => e,
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; true if it held.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[path = "../../common/process.rs"]
mod process;
pub use process::process_is_gone;
