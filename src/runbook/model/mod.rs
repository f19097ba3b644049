//! The typed model of a runbook. These types are the language: the JSON Schema in
//! `schemas/runbook.schema.json` is generated from them, so every doc comment here is what an
//! editor shows when a person hovers over a key.

use super::duration::{Deadline, Duration};
use super::node::Node;
use super::node::Span;
use super::spanned::{Spanned, SpannedMap};
use schemars::JsonSchema;
use serde::Deserialize;

// The actions of the language, each in its own file: its fields, its rules, its summary.
// An action is listed once more below, in `action_list!`.
mod action_body;
mod applies;
mod approval;
mod assert;
mod exec;
mod http;
mod kubernetes;
mod locks;
mod objectives;
mod record;
mod sleep;
mod undo;
mod window;

pub use action_body::{ActionBody, ActionChecks, PlannedTemplates, keys_of};
pub use applies::Applies;
pub use approval::Approval;
pub use assert::{Assert, Conditions};
pub use exec::Exec;
pub use http::{BasicAuth, Http, HttpAuth, HttpMethod, Tls};
pub use kubernetes::{
    KUBERNETES_OPERATIONS, Kubernetes, KubernetesCreate, KubernetesPatch, KubernetesWait,
    PatchType, ResourceRef,
};
pub use locks::LockNames;
pub use objectives::{Measure, Objective, RUN_STARTED};
pub use record::Record;
pub use undo::OnFailure;
pub use window::{OnWindowClose, StepWindow, WindowNeed};

/// A runbook: a DAG of steps with typed inputs, run by `runbook run`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "runbook")]
pub struct Runbook {
    /// The language version. Always 1.
    pub version: Spanned<u32>,
    /// The runbook's name: lowercase letters, digits, `-` and `_`, starting with a letter or digit.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9_-]*$"))]
    pub name: Spanned<String>,
    /// What the runbook does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Typed inputs, checked before anything runs. An input without `default` is required.
    #[serde(default)]
    pub inputs: SpannedMap<Input>,
    /// Secrets, resolved when the run starts; never journaled, and redacted as `***` from
    /// every log, output and report.
    #[serde(default)]
    pub secrets: SpannedMap<Spanned<Secret>>,
    /// Settings every step inherits unless it sets its own.
    #[serde(default)]
    pub defaults: Option<Defaults>,
    /// Steps (and `for_each` items) running at once, run-wide.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_parallel: Option<Spanned<u32>>,
    /// When the run must be over: a duration (90m) or an RFC 3339 timestamp. At the deadline
    /// nothing new starts, running steps are cancelled, `finally` runs, and the run fails.
    #[serde(default)]
    pub deadline: Option<Spanned<Deadline>>,
    /// Locks the whole run holds, from before its first step until it ends: names
    /// (templates over `inputs`) that one run at a time may hold, across every run sharing
    /// the store. A run that needs a lock another holds waits for it.
    #[serde(default)]
    pub locks: Option<LockNames>,
    /// How long to wait for a held lock before failing (`0s`: fail at once, naming the
    /// holder). Also the default of every step's `lock_wait`. Without it, a run waits until
    /// its deadline.
    #[serde(default)]
    pub lock_wait: Option<Spanned<Duration>>,
    /// What the run does when a step gated by `window` has less time left in the run's
    /// window than it needs: `park` (the default) or `fail`. Only the root runbook's
    /// setting applies.
    #[serde(default)]
    pub on_window_close: Option<Spanned<OnWindowClose>>,
    /// What a failed run does with what its steps did: `keep` (the default: leave it, and
    /// run `finally`) or `undo` (run the `undo` of every step that succeeded, in reverse
    /// order of the graph, then `finally`).
    #[serde(default)]
    pub on_failure: Option<Spanned<OnFailure>>,
    /// The steps. A step starts when every step it `needs` has succeeded or been skipped.
    pub steps: Vec<Step>,
    /// Steps that always run last, whatever happened: success, failure, cancel or deadline.
    #[serde(default)]
    pub finally: Vec<Step>,
    /// What a caller (`uses:`) or a report sees: jq expressions over the run's context.
    #[serde(default)]
    pub outputs: SpannedMap<Spanned<String>>,
    /// What a run is measured against, by name (`rto`, `rpo`): reports show each as met,
    /// missed or not measurable.
    #[serde(default)]
    pub objectives: SpannedMap<Objective>,
}

/// A typed input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The input's type; a value given on the command line is read as this type.
    #[serde(rename = "type")]
    pub kind: Spanned<InputType>,
    /// The value when none is given; without it the input is required. Must match `type`.
    #[serde(default)]
    pub default: Option<Node>,
    /// What the input means, for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
}

impl InputType {
    pub fn name(self) -> &'static str {
        match self {
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Number => "number",
            InputType::Boolean => "boolean",
            InputType::Array => "array",
            InputType::Object => "object",
        }
    }

    /// Whether a JSON value is of this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match self {
            InputType::String => value.is_string(),
            InputType::Integer => value.is_i64() || value.is_u64(),
            InputType::Number => value.is_number(),
            InputType::Boolean => value.is_boolean(),
            InputType::Array => matches!(value, Value::Array(_)),
            InputType::Object => matches!(value, Value::Object(_)),
        }
    }
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Secret {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file (a trailing newline is dropped).
    File(String),
}

/// Settings every step inherits unless it sets its own.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Bound on one attempt of a step's action.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
    /// How failed attempts are retried.
    #[serde(default)]
    pub retry: Option<Spanned<Retry>>,
}

/// How a failed action is retried.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Attempts in all, the first included (1 means no retry).
    #[schemars(range(min = 1))]
    pub attempts: Spanned<u32>,
    /// Wait before the second attempt.
    #[serde(default)]
    pub delay: Option<Duration>,
    /// Each wait is the previous one times this factor (1.0 keeps it constant).
    #[serde(default)]
    pub backoff: Option<Spanned<f64>>,
    /// The longest wait between attempts.
    #[serde(default)]
    pub max_delay: Option<Duration>,
    /// Randomise each wait (between half and all of it) so many runs do not retry in step.
    #[serde(default)]
    pub jitter: Option<bool>,
}

/// How `until` polls the action.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Wait between two runs of the action; at least 100ms.
    #[serde(default)]
    pub interval: Option<Spanned<Duration>>,
    /// Give up (the attempt fails) when `until` has not held for this long; at least 100ms.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
}

/// Every action of the language with a body of its own, once: its doc comment (what an
/// editor shows on the key), its key in YAML, its [`ActionRef`] variant and the type of its
/// body. Adding an action is its own file and one line here. `uses` (with `with`) is the call
/// of another runbook, not an action with a body, and is written out where it is needed.
///
/// `action_list!(name { tokens })` calls `name!` with `{ tokens }` followed by the list.
macro_rules! action_list {
    ($callback:ident { $($input:tt)* }) => {
        $callback! {
            { $($input)* }
            /// Run a command: `command` (argv, no shell) or `script` (run by `sh -eu`).
            exec: Exec(Exec),
            /// Make an HTTP request.
            http: Http(Http),
            /// Get, create, patch, delete or wait on a Kubernetes resource.
            kubernetes: Kubernetes(Kubernetes),
            /// Park the run until a person approves it with `runbook approve`.
            approval: Approval(Approval),
            /// Fail unless jq conditions hold.
            assert: Assert(Assert),
            /// Wait this long.
            sleep: Sleep(Duration),
            /// Add values to a named record kept in the store across runs, or read it.
            record: Record(Record),
        }
    };
}

/// Generates a struct with the fields shared by everything that carries one action (a
/// step, its fallback and its verify probe): its own fields, one per action of
/// [`action_list!`], and `uses` with `with`.
macro_rules! with_action {
    (
        {
            $(#[$meta:meta])*
            pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)* }
        }
        $( $(#[doc = $doc:literal])* $key:ident : $variant:ident ($body:ty), )*
    ) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            $(
                $(#[doc = $doc])*
                #[serde(default)]
                pub $key: Option<Box<Spanned<$body>>>,
            )*
            /// Run another runbook as this step; the path is relative to this file.
            #[serde(default)]
            pub uses: Option<Spanned<String>>,
            /// Inputs for the runbook named by `uses`.
            #[serde(default)]
            pub with: Option<Box<Spanned<SpannedMap<Node>>>>,
        }

        impl $name {
            /// The actions this body names, each with its key; a valid body has exactly one.
            pub fn actions(&self) -> Vec<ActionRef<'_>> {
                let mut found = Vec::new();
                $( if let Some(a) = &self.$key { found.push(ActionRef::$variant(a)); } )*
                if let Some(a) = &self.uses { found.push(ActionRef::Uses(a, self.with.as_deref())); }
                found
            }

            /// The one action, when there is exactly one.
            pub fn action(&self) -> Option<ActionRef<'_>> {
                let actions = self.actions();
                if actions.len() == 1 { actions.into_iter().next() } else { None }
            }
        }
    };
}

/// The keys that name an action, the variants that borrow one, and the one match from an
/// action to its own file, all from [`action_list!`].
macro_rules! action_registry {
    (
        {}
        $( $(#[doc = $doc:literal])* $key:ident : $variant:ident ($body:ty), )*
    ) => {
        /// The keys that name an action, for messages.
        pub const ACTION_KEYS: &[&str] = &[$(stringify!($key),)* "uses"];

        /// One action of a step, borrowed.
        #[derive(Debug, Clone, Copy)]
        pub enum ActionRef<'a> {
            $( $(#[doc = $doc])* $variant(&'a Spanned<$body>), )*
            /// Run another runbook, with these inputs.
            Uses(&'a Spanned<String>, Option<&'a Spanned<SpannedMap<Node>>>),
        }

        impl<'a> ActionRef<'a> {
            /// The one match from an action to its own file: where it is written, and its body.
            fn parts(&self) -> (Span, Option<&'a dyn ActionBody>) {
                match *self {
                    $( ActionRef::$variant(a) => (a.span, Some(&a.value)), )*
                    ActionRef::Uses(a, _) => (a.span, None),
                }
            }

            /// The action's key in YAML.
            pub fn key(&self) -> &'static str {
                match self {
                    $( ActionRef::$variant(_) => stringify!($key), )*
                    ActionRef::Uses(..) => "uses",
                }
            }
        }
    };
}

action_list!(action_registry {});

impl<'a> ActionRef<'a> {
    /// What the language knows of the action, from its own file; `None` for `uses`, which
    /// validation and the plan treat as the call of another runbook.
    pub fn body(&self) -> Option<&'a dyn ActionBody> {
        self.parts().1
    }

    /// Where the action is written.
    pub fn span(&self) -> Span {
        self.parts().0
    }

    /// A one-line summary of the action, as a person would say it.
    pub fn describe(&self) -> String {
        match (self, self.body()) {
            (ActionRef::Uses(uses, _), _) => format!("uses {}", uses.value),
            (_, Some(body)) => body.describe(),
            (_, None) => self.key().to_owned(),
        }
    }
}

action_list! { with_action {
    /// A step: one action, and when and how to run it.
    #[derive(Debug, Clone, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Step {
        /// The step as written, so checks can reach every string of its action.
        #[serde(skip)]
        #[schemars(skip)]
        pub node: Node,
        /// Unique in the runbook (`steps` and `finally` together): lowercase letters, digits and `_`.
        #[schemars(regex(pattern = r"^[a-z0-9_]+$"))]
        pub id: Spanned<String>,
        /// Shown to people.
        #[serde(default)]
        pub name: Option<String>,
        /// The steps that must end (succeeded or skipped) before this one starts. Omitted: the
        /// step before it in the list. `[]`: none.
        #[serde(default)]
        pub needs: Option<Spanned<Vec<Spanned<String>>>>,
        /// jq over the context; false or null skips the step.
        #[serde(default)]
        pub when: Option<Spanned<String>>,
        /// jq over the context yielding an array: one instance of the step per element, each
        /// seeing `item` and `index`.
        #[serde(default)]
        pub for_each: Option<Spanned<String>>,
        /// For a `for_each` step: instances running at once.
        #[serde(default)]
        #[schemars(range(min = 1))]
        pub max_parallel: Option<Spanned<u32>>,
        /// Bound on one attempt of the action.
        #[serde(default)]
        pub timeout: Option<Spanned<Duration>>,
        /// How failed attempts are retried.
        #[serde(default)]
        pub retry: Option<Spanned<Retry>>,
        /// jq over the action's result (`$ctx` is the context): repeat the action until it holds.
        #[serde(default)]
        pub until: Option<Spanned<String>>,
        /// How `until` polls.
        #[serde(default)]
        pub poll: Option<Spanned<Poll>>,
        /// Named values, each a jq expression over the action's result (`$ctx` is the context).
        #[serde(default)]
        pub outputs: Option<Spanned<SpannedMap<Spanned<String>>>>,
        /// Runs when the action still fails after its retries; when it succeeds the step
        /// succeeds with `via: fallback` and the fallback's outputs.
        #[serde(default)]
        pub fallback: Option<Box<Spanned<Fallback>>>,
        /// A probe run before a step that a crash left in flight is run again; when `that`
        /// holds, the step is recorded as succeeded instead of being repeated.
        #[serde(default)]
        pub verify: Option<Box<Spanned<Verify>>>,
        /// How to take back what the step did, once it has succeeded: run (in reverse order
        /// of the graph) when the run is undone (`on_failure: undo`, `on_window_close: undo`,
        /// `runbook abort --undo`). It reads the step's outputs as `step.outputs`; for a
        /// `for_each` step it runs once per succeeded item, with its `item` and `index`.
        #[serde(default)]
        pub undo: Option<Box<Spanned<Undo>>>,
        /// true: a failure of this step does not fail the run, and its dependents still run.
        #[serde(default)]
        pub continue_on_failure: Option<bool>,
        /// Something to tell the person running the runbook, shown at the end of the run (in
        /// the summary, the JSON output and `runs show`). A template, rendered when the step
        /// (each item of a `for_each`) succeeds or fails, never when it is skipped or
        /// cancelled; besides the usual context it reads `step.status`, `step.outputs` and
        /// `step.error` of this step.
        #[serde(default)]
        pub notice: Option<Spanned<String>>,
        /// Locks the step holds while it runs, retries and fallback included (each item of
        /// a `for_each` on its own): names (templates over the context) that one step of
        /// one run at a time may hold, across every run sharing the store.
        #[serde(default)]
        pub locks: Option<LockNames>,
        /// How long the step waits for a held lock before failing; default the runbook's
        /// `lock_wait`.
        #[serde(default)]
        pub lock_wait: Option<Spanned<Duration>>,
        /// How much time must be left in the run's window for the step to start (`needs:
        /// 30m`, or `needs: auto` with an `estimate`). A run without a window ignores it.
        #[serde(default)]
        pub window: Option<Spanned<StepWindow>>,
    }
} }

action_list! { with_action {
    /// What a step does when its action still fails after its retries.
    #[derive(Debug, Clone, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Fallback {
        /// Bound on one attempt of the fallback's action.
        #[serde(default)]
        pub timeout: Option<Spanned<Duration>>,
        /// How failed attempts of the fallback are retried.
        #[serde(default)]
        pub retry: Option<Spanned<Retry>>,
        /// jq over the fallback's result: repeat it until this holds.
        #[serde(default)]
        pub until: Option<Spanned<String>>,
        /// How `until` polls.
        #[serde(default)]
        pub poll: Option<Spanned<Poll>>,
        /// The step's outputs when the fallback ran: jq over the fallback's result.
        #[serde(default)]
        pub outputs: Option<Spanned<SpannedMap<Spanned<String>>>>,
    }
} }

action_list! { with_action {
    /// A probe that tells whether a step's work is already done.
    #[derive(Debug, Clone, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Verify {
        /// jq over the probe's result (`$ctx` is the context): true means the work is done.
        pub that: Spanned<String>,
        /// The step's outputs when the probe holds: jq over the probe's result.
        #[serde(default)]
        pub outputs: Option<Spanned<SpannedMap<Spanned<String>>>>,
    }
} }

action_list! { with_action {
    /// How to take back what a step did: one action, with its own retries and timeout.
    #[derive(Debug, Clone, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Undo {
        /// Bound on one attempt of the undo's action.
        #[serde(default)]
        pub timeout: Option<Spanned<Duration>>,
        /// How failed attempts of the undo are retried.
        #[serde(default)]
        pub retry: Option<Spanned<Retry>>,
        /// jq over the undo's result (`$ctx` is the context): repeat it until this holds.
        #[serde(default)]
        pub until: Option<Spanned<String>>,
        /// How `until` polls.
        #[serde(default)]
        pub poll: Option<Spanned<Poll>>,
    }
} }

/// A value used as text: a string, or a number or boolean written without quotes
/// (`PORT: 8080`), read as its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl serde::de::Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

impl JsonSchema for Text {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Text".into()
    }
    fn json_schema(_generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::diagnostic::SourceFile;
    use crate::runbook::load;

    /// One step of each action, written the simplest way.
    const ONE_OF_EACH: &str = r#"
version: 1
name: each
steps:
  - id: exec
    exec: {command: [echo, hi]}
  - id: http
    http: {url: "http://localhost/"}
  - id: kubernetes
    kubernetes: {get: {api_version: v1, kind: Pod, name: p}}
  - id: approval
    approval: {prompt: go?}
  - id: assert
    assert: {that: "true"}
  - id: sleep
    sleep: 1s
  - id: record
    record: {name: r}
  - id: uses
    uses: other.yaml
"#;

    /// An action added to the language is found on a step, under its own key, and says
    /// what it does in one line starting with that key: its line in `action_list!` gives it
    /// a field, an `ActionRef` and a place in `actions()`.
    #[test]
    fn every_action_key_is_read_from_a_step_and_described() {
        let (loaded, problems) = load::load(SourceFile::new("each.yaml", ONE_OF_EACH));
        assert!(problems.is_empty(), "{problems:?}");
        let runbook = loaded.unwrap().runbook;
        let keys: Vec<&str> = runbook.steps.iter().map(|s| s.id.value.as_str()).collect();
        assert_eq!(
            keys, ACTION_KEYS,
            "the test names every action of the language"
        );
        for step in &runbook.steps {
            let action = step.action().expect("one action");
            assert_eq!(action.key(), step.id.value);
            assert!(
                action.describe().starts_with(action.key()),
                "{}",
                action.describe()
            );
            assert_eq!(action.body().is_none(), action.key() == "uses");
        }
    }

    #[test]
    fn the_keys_of_a_body_are_its_fields_in_order_with_their_yaml_names() {
        assert_eq!(
            keys_of::<Exec>(),
            ["command", "script", "env", "cwd", "stdin"]
        );
        assert_eq!(
            keys_of::<KubernetesPatch>(),
            ["api_version", "kind", "name", "namespace", "type", "patch"]
        );
    }
}
