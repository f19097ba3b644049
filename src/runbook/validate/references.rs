//! jq expressions and templates: they compile, and what they read exists when they run.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn check_templates_in(&self, node: &Node, scope: Scope) {
        self.check_templates_except(node, scope, None);
    }

    pub(super) fn check_templates_except(&self, node: &Node, scope: Scope, skip: Option<Span>) {
        let mut strings = Vec::new();
        node.for_each_string(&mut |text, node| strings.push((text, node.span)));
        for (text, span) in strings {
            if Some(span) != skip {
                self.check_template_text(text, span, scope);
            }
        }
    }

    pub(super) fn check_template_text(&self, text: &str, span: Span, scope: Scope) {
        if !text.contains("{{") {
            return;
        }
        match template::check_template(text) {
            Ok(references) => {
                for reference in references {
                    self.check_reference(&reference, text, span, scope);
                }
            }
            Err(error) => {
                let at = inner_span(self.file, span, text, error.span.clone());
                self.error(at, format!("invalid template: {}", error.message))
                    .labels[0]
                    .1 = "here".to_owned();
            }
        }
    }

    pub(super) fn check_jq(
        &self,
        expression: &'a Spanned<String>,
        root: Root,
        scope: Scope,
        what: &'static str,
    ) {
        self.pending_jq.borrow_mut().push(PendingJq {
            expression,
            root,
            scope,
            what,
        });
    }

    /// Compiles every pending jq expression and checks what each reads.
    pub(super) fn check_pending_jq(&self) {
        let pending = std::mem::take(&mut *self.pending_jq.borrow_mut());
        let sources: Vec<(&str, Root)> = pending
            .iter()
            .map(|p| (p.expression.value.as_str(), p.root))
            .collect();
        let results = template::jq::check_many(&sources);
        for (item, result) in pending.iter().zip(results) {
            let expression = item.expression;
            match result {
                Ok(references) => {
                    for reference in references {
                        self.check_reference(
                            &reference,
                            &expression.value,
                            expression.span,
                            item.scope,
                        );
                    }
                }
                Err(errors) => {
                    for error in errors {
                        let at = inner_span(
                            self.file,
                            expression.span,
                            &expression.value,
                            error.span.clone(),
                        );
                        self.error(
                            at,
                            format!("invalid jq in {}: {}", item.what, error.message),
                        )
                        .labels[0]
                            .1 = "here".to_owned();
                    }
                }
            }
        }
    }

    /// Whether a path read from the context can exist when this expression runs.
    pub(super) fn check_reference(
        &self,
        reference: &Reference,
        text: &str,
        span: Span,
        scope: Scope,
    ) {
        let at = inner_span(self.file, span, text, reference.span.clone());
        let path = &reference.path;
        let Some(root) = path.first() else { return };
        let shown = path.join(".");
        match root.as_str() {
            "inputs" => {
                if let Some(name) = path.get(1)
                    && !self.runbook.inputs.contains_key(name)
                    && !self.loaded.unloaded.inputs.contains(name)
                {
                    let help = closest(name, self.runbook.inputs.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `inputs.{c}`?"))
                        .or_else(|| {
                            Some(declared_list(
                                "inputs",
                                self.runbook.inputs.keys().map(|k| k.value.as_str()),
                            ))
                        });
                    self.error(
                        at,
                        format!("`{shown}` names an input this runbook does not declare"),
                    )
                    .help = help;
                }
            }
            "secrets" => {
                if let Some(name) = path.get(1)
                    && !self.runbook.secrets.contains_key(name)
                    && !self.loaded.unloaded.secrets.contains(name)
                {
                    let help = closest(name, self.runbook.secrets.keys().map(|k| k.value.as_str()))
                        .map(|c| format!("did you mean `secrets.{c}`?"))
                        .or_else(|| {
                            Some(declared_list(
                                "secrets",
                                self.runbook.secrets.keys().map(|k| k.value.as_str()),
                            ))
                        });
                    self.error(
                        at,
                        format!("`{shown}` names a secret this runbook does not declare"),
                    )
                    .help = help;
                }
            }
            "item" | "index" => {
                if !scope.for_each {
                    self.error(at, format!("`{root}` exists only in a for_each step"))
                        .help = Some(
                        "add `for_each:` to this step, or read the value from elsewhere".to_owned(),
                    );
                }
            }
            "run" => {
                if let Some(field) = path.get(1) {
                    self.check_field(at, field, RUN_FIELDS, "run");
                }
            }
            "step" => {
                if let Some(field) = path.get(1) {
                    let fields = if scope.notice {
                        NOTICE_SELF_FIELDS
                    } else {
                        SELF_FIELDS
                    };
                    self.check_field(at, field, fields, "step");
                }
            }
            "steps" => self.check_step_reference(at, path, scope),
            other => {
                let help = closest(other, CONTEXT_ROOTS.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("the context has {}", quoted(CONTEXT_ROOTS)));
                self.error(at, format!("`{shown}` is not in the context"))
                    .help = Some(help);
            }
        }
    }

    pub(super) fn check_field(&self, at: Span, field: &str, fields: &[&str], owner: &str) {
        if !fields.contains(&field) {
            let help = closest(field, fields.iter().copied())
                .map(|c| format!("did you mean `{owner}.{c}`?"))
                .unwrap_or_else(|| format!("`{owner}` has {}", quoted(fields)));
            self.error(at, format!("`{owner}.{field}` does not exist"))
                .help = Some(help);
        }
    }

    pub(super) fn check_step_reference(&self, at: Span, path: &[String], scope: Scope) {
        let Some(name) = path.get(1) else { return };
        let Some(&target) = self.dag.index_of.get(name) else {
            if !self.loaded.unloaded.steps.contains(name) {
                let help = closest(name, self.dag.ids.iter().map(String::as_str))
                    .map(|c| format!("did you mean `steps.{c}`?"));
                self.error(
                    at,
                    format!("`steps.{name}` names a step that does not exist"),
                )
                .help = help;
            }
            return;
        };
        if let Some(current) = scope.step {
            let in_finally = self.dag.sections[current] == Section::Finally;
            if target == current {
                self.error(
                    at,
                    format!("step `{name}` reads its own result through `steps.{name}`"),
                )
                .help = Some("inside `outputs` and `until`, `.` is this step's result".to_owned());
                return;
            }
            if !in_finally && !self.dag.depends_on(current, target) {
                let current_id = self.dag.ids[current].clone();
                self.error(
                    at,
                    format!(
                        "step `{current_id}` reads `steps.{name}` but does not depend on `{name}`"
                    ),
                )
                .help = Some(format!(
                    "`{name}` may not have run yet; add `{name}` to the needs of `{current_id}`"
                ));
                return;
            }
        }
        let Some(field) = path.get(2) else { return };
        if !STEP_FIELDS.contains(&field.as_str()) {
            self.check_field(at, field, STEP_FIELDS, &format!("steps.{name}"));
            return;
        }
        if field == "outputs" && self.step(target).for_each.is_some() {
            let output = path.get(3).map_or(String::new(), |o| format!(".{o}"));
            self.error(
                at,
                format!("step `{name}` runs once per item, so it has no single `outputs`"),
            )
            .help = Some(format!(
                "read each item's outputs: `[.steps.{name}.items[].outputs{output}]`"
            ));
            return;
        }
        if field == "outputs"
            && let Some(output) = path.get(3)
            && let Some(declared) = self.declared_outputs(target)
            && !declared.iter().any(|d| d == output)
        {
            let help = closest(output, declared.iter().map(String::as_str))
                .map(|c| format!("did you mean `steps.{name}.outputs.{c}`?"))
                .unwrap_or_else(|| {
                    if declared.is_empty() {
                        format!("step `{name}` declares no outputs")
                    } else {
                        format!("step `{name}` declares {}", quoted_owned(&declared))
                    }
                });
            let step = self.step(target);
            let by_action = self
                .body_outputs(
                    step.outputs.as_ref(),
                    step.uses.as_ref(),
                    step.approval.is_some(),
                )
                .is_some_and(|names| names.iter().any(|n| n == output));
            if by_action && step.fallback.is_some() {
                self.error(
                    at,
                    format!("the fallback of step `{name}` has no output `{output}`"),
                )
                .help = Some(format!(
                    "when the fallback runs, its outputs replace the step's: declare `{output}` in the fallback's `outputs` too"
                ));
            } else {
                self.error(at, format!("step `{name}` has no output `{output}`"))
                    .help = Some(help);
            }
        }
    }

    /// The output names a step is known to produce, whichever way it ends (its action, or
    /// its fallback); `None` when they cannot be known before the run (a called runbook
    /// that did not load).
    pub(super) fn declared_outputs(&self, index: usize) -> Option<Vec<String>> {
        let step = self.step(index);
        let mut names = self.body_outputs(
            step.outputs.as_ref(),
            step.uses.as_ref(),
            step.approval.is_some(),
        )?;
        if let Some(fallback) = &step.fallback {
            let from_fallback = self.body_outputs(
                fallback.outputs.as_ref(),
                fallback.uses.as_ref(),
                fallback.approval.is_some(),
            )?;
            names.retain(|n| from_fallback.contains(n));
        }
        Some(names)
    }

    /// Output names of one body: its `outputs`, or those of the runbook it `uses`, or the
    /// answer of an approval.
    pub(super) fn body_outputs(
        &self,
        outputs: Option<&Spanned<SpannedMap<Spanned<String>>>>,
        uses: Option<&Spanned<String>>,
        approval: bool,
    ) -> Option<Vec<String>> {
        match (outputs, uses) {
            (Some(outputs), _) => Some(outputs.value.keys().map(|k| k.value.clone()).collect()),
            (None, Some(uses)) => self.bundle.called(self.loaded, &uses.value).map(|called| {
                called
                    .runbook
                    .outputs
                    .keys()
                    .map(|k| k.value.clone())
                    .collect()
            }),
            (None, None) if approval => Some(
                ["approved_by", "at", "comment", "approvers"]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            (None, None) => Some(Vec::new()),
        }
    }
}

pub(super) fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn quoted_owned(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn declared_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        format!("the runbook declares no {what}")
    } else {
        format!("declared {what}: {}", quoted(&names))
    }
}

/// Where byte `at` of a literal block scalar's value (`script: |`) lies in its source
/// text: the value's lines are the source's lines without their indentation, so a
/// repeated piece (`{{inputs.job}}` twice in a script) is still found at its own line.
/// `None` when the source lines are not the value's lines (a folded or quoted scalar).
pub(super) fn literal_block_offset(raw: &str, value: &str, at: usize) -> Option<usize> {
    // The span starts at the `|` header or at the first line's text.
    let body_start = if raw.starts_with('|') {
        raw.find('\n')? + 1
    } else {
        0
    };
    let line = value.get(..at)?.matches('\n').count();
    let column = at - value[..at].rfind('\n').map_or(0, |nl| nl + 1);
    let value_line = value.lines().nth(line).unwrap_or("");
    let mut line_start = body_start;
    for _ in 0..line {
        line_start += raw[line_start..].find('\n')? + 1;
    }
    let source_line = raw[line_start..].lines().next()?;
    // The indentation is whatever precedes the value's line in the source line.
    let indent = source_line.strip_suffix(value_line)?.len();
    source_line[..indent]
        .bytes()
        .all(|b| b == b' ')
        .then_some(line_start + indent + column)
}

/// The span of `inner` (a byte range of the string's value) in the file. A plain scalar maps
/// directly; a quoted or block scalar is searched for the inner text; failing that, the
/// whole scalar is the best place to point.
pub(super) fn inner_span(
    file: &SourceFile,
    span: Span,
    value: &str,
    inner: std::ops::Range<usize>,
) -> Span {
    let Some(raw) = file.text.get(span.offset..span.end()) else {
        return span;
    };
    let inner =
        inner.start.min(value.len())..inner.end.min(value.len()).max(inner.start.min(value.len()));
    if raw == value {
        return span.narrow(inner);
    }
    for quote in ['\'', '"'] {
        if raw.len() >= 2
            && raw.starts_with(quote)
            && raw.ends_with(quote)
            && &raw[1..raw.len() - 1] == value
        {
            return Span::new(span.offset + 1 + inner.start, inner.len());
        }
    }
    if let Some(at) = literal_block_offset(raw, value, inner.start) {
        return Span::new(span.offset + at, inner.len());
    }
    let Some(piece) = value.get(inner.clone()) else {
        return span;
    };
    if !piece.is_empty() {
        let mut found = raw.match_indices(piece);
        if let (Some((at, _)), None) = (found.next(), found.next()) {
            return Span::new(span.offset + at, piece.len());
        }
    }
    span
}
