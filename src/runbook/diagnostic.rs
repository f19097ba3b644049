//! A problem in a runbook, as a person sees it: what is wrong, where (file:line:col with a
//! snippet), and what would fix it.

use super::node::Span;
use miette::{LabeledSpan, NamedSource, SourceSpan};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A runbook file's text, shared by every diagnostic that points into it.
#[derive(Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as resolved relative to a calling runbook).
    pub path: PathBuf,
    pub text: Arc<str>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> Self {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn named(&self) -> NamedSource<Arc<str>> {
        NamedSource::new(display_path(&self.path), self.text.clone()).with_language("yaml")
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(&self.text, offset);
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// The byte offset of a 1-based line and character column.
    pub fn offset_of(&self, line: usize, column: usize) -> usize {
        let mut offset = 0;
        for (index, text_line) in self.text.split_inclusive('\n').enumerate() {
            if index + 1 == line {
                let within: usize = text_line
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(char::len_utf8)
                    .sum();
                return offset + within;
            }
            offset += text_line.len();
        }
        self.text.len()
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// Paths are shown with `/` whatever the platform, so snapshots and messages agree.
pub fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// One problem found in a runbook.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub file: Option<SourceFile>,
    /// The first label is where the problem is; later ones point at what it relates to.
    pub labels: Vec<(Span, String)>,
    pub help: Option<String>,
}

impl Diagnostic {
    /// A problem with no place in a file (a file that cannot be read, say).
    pub fn plain(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            file: None,
            labels: Vec::new(),
            help: None,
        }
    }

    /// A problem at one place in a file.
    pub fn at(file: &SourceFile, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            file: Some(file.clone()),
            labels: vec![(span, String::new())],
            help: None,
        }
    }

    pub fn with_label(mut self, text: impl Into<String>) -> Self {
        if let Some(first) = self.labels.first_mut() {
            first.1 = text.into();
        }
        self
    }

    pub fn with_related(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push((span, text.into()));
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// `file:line:col` of the primary label, as editors and terminals link it.
    pub fn location(&self) -> Option<String> {
        let file = self.file.as_ref()?;
        let span = self.labels.first()?.0;
        let (line, col) = file.line_col(span.offset);
        Some(format!("{}:{line}:{col}", display_path(&file.path)))
    }

    /// The byte offset of the primary label, for ordering problems as they appear in a file.
    pub fn offset(&self) -> usize {
        self.labels.first().map_or(0, |(span, _)| span.offset)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl Diagnostic {
    /// The diagnostic in the form miette renders, with the snippet and labels.
    pub fn to_miette(&self) -> RenderedDiagnostic {
        RenderedDiagnostic {
            message: self.message.clone(),
            code: self.file.as_ref().map(SourceFile::named),
            labels: self
                .labels
                .iter()
                .enumerate()
                .map(|(index, (span, text))| {
                    let label = (!text.is_empty()).then(|| text.clone());
                    let span = SourceSpan::from(*span);
                    if index == 0 {
                        LabeledSpan::new_primary_with_span(label, span)
                    } else {
                        LabeledSpan::new_with_span(label, span)
                    }
                })
                .collect(),
            help: self.help.clone(),
        }
    }
}

/// A [`Diagnostic`] ready for miette's report handlers.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct RenderedDiagnostic {
    message: String,
    #[source_code]
    code: Option<NamedSource<Arc<str>>>,
    #[label(collection)]
    labels: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
}
