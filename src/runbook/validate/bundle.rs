//! A runbook and every runbook it calls through `uses`: found, read and loaded once each.

use super::*;

/// A runbook and every runbook it calls through `uses`, each loaded once.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    /// The canonical path of the runbook that was asked for.
    pub root: PathBuf,
    /// Every runbook that loaded, by canonical path.
    pub runbooks: BTreeMap<PathBuf, Loaded>,
    /// Where each `uses:` leads: (the caller's `file.path`, the `uses` value) to the called
    /// runbook's canonical path. Worked out once, while loading, so running never looks at
    /// the file system again (a resumed run may come from sources kept in its journal).
    pub links: HashMap<(PathBuf, String), PathBuf>,
}

impl Bundle {
    pub fn root(&self) -> Option<&Loaded> {
        self.runbooks.get(&self.root)
    }

    /// The runbook a `uses:` value of `caller` names, if it loaded.
    pub fn called(&self, caller: &Loaded, uses: &str) -> Option<&Loaded> {
        self.runbooks.get(self.called_path(caller, uses)?)
    }

    /// The canonical path of the runbook a `uses:` value of `caller` names.
    pub fn called_path(&self, caller: &Loaded, uses: &str) -> Option<&PathBuf> {
        self.links.get(&(caller.file.path.clone(), uses.to_owned()))
    }
}

/// The walk over a runbook and the runbooks it uses.
#[derive(Default)]
pub(super) struct Walk<'s> {
    /// Runbooks being validated, innermost last: a `uses` of one of them is a cycle.
    pub(super) stack: Vec<PathBuf>,
    pub(super) done: HashSet<PathBuf>,
    /// Read runbooks from here instead of the file system.
    pub(super) stored: Option<&'s HashMap<PathBuf, String>>,
    /// The directories (canonical) a `uses` may lead into; `None`: anywhere (stored
    /// sources, checked when the run started; text given without a file).
    pub(super) scope: Option<Vec<PathBuf>>,
}

impl Walk<'_> {
    fn canonical(&self, path: &Path) -> Option<PathBuf> {
        match self.stored {
            Some(sources) => {
                let normal = normalize(path);
                sources.contains_key(&normal).then_some(normal)
            }
            None => std::fs::canonicalize(path).ok(),
        }
    }

    fn read(&self, path: &Path, canonical: &Path) -> Result<SourceFile, Diagnostic> {
        match self.stored {
            Some(sources) => match sources.get(canonical) {
                Some(text) => Ok(SourceFile::new(path, text.as_str())),
                None => Err(Diagnostic::plain(format!(
                    "the stored sources have no runbook {}",
                    display_path(path)
                ))),
            },
            None => load::read_source(path),
        }
    }

    pub(super) fn visit(
        &mut self,
        file: SourceFile,
        canonical: PathBuf,
        validation: &mut Validation,
    ) {
        self.done.insert(canonical.clone());
        let (loaded, problems) = load::load(file);
        validation.problems.extend(problems);
        let Some(loaded) = loaded else { return };
        self.stack.push(canonical.clone());
        // Called runbooks first, so checks of `with:` and of their outputs can see them.
        for uses in loaded.runbook.all_steps().flat_map(Step::uses_paths) {
            self.visit_uses(&loaded, uses, validation);
        }
        self.stack.pop();
        let problems = check(&loaded, &validation.bundle);
        validation.problems.extend(problems);
        validation.bundle.runbooks.insert(canonical, loaded);
    }

    fn visit_uses(&mut self, caller: &Loaded, uses: &Spanned<String>, validation: &mut Validation) {
        let path = resolve_uses(&caller.file.path, &uses.value);
        let Some(canonical) = self.canonical(&path) else {
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!("the runbook `{}` does not exist", uses.value),
                )
                .with_label(format!(
                    "looked for {}",
                    display_path(&lexically_normal(&path))
                ))
                .with_help(
                    similar_file(&path)
                        .map(|near| {
                            let shown = Path::new(&uses.value).with_file_name(near);
                            format!("did you mean `{}`?", display_path(&shown))
                        })
                        .unwrap_or_else(|| {
                            "`uses` paths are relative to the runbook that names them".to_owned()
                        }),
                ),
            );
            return;
        };
        if let Some(scope) = &self.scope
            && !scope.iter().any(|dir| canonical.starts_with(dir))
        {
            let mut allowed: Vec<String> = scope.iter().map(|d| display_path(d)).collect();
            allowed.dedup();
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!(
                        "`uses` leads outside the runbook's directory tree: `{}` is {}, not under {}",
                        uses.value,
                        display_path(&canonical),
                        allowed.join(" or ")
                    ),
                )
                .with_label("outside the tree")
                .with_help(format!(
                    "keep called runbooks beside the runbook or below it, or allow their \
                     directory with --allow-uses-dir {}",
                    canonical
                        .parent()
                        .map_or_else(|| "DIR".to_owned(), display_path)
                )),
            );
            return;
        }
        validation.bundle.links.insert(
            (caller.file.path.clone(), uses.value.clone()),
            canonical.clone(),
        );
        if let Some(position) = self.stack.iter().position(|p| *p == canonical) {
            let chain: Vec<String> = self.stack[position..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| file_name(p))
                .collect();
            validation.problems.push(
                Diagnostic::at(
                    &caller.file,
                    uses.span,
                    format!("runbooks use each other in a cycle: {}", chain.join(" -> ")),
                )
                .with_label("this use closes the cycle"),
            );
            return;
        }
        if self.done.contains(&canonical) {
            return;
        }
        match self.read(&path, &canonical) {
            Ok(file) => self.visit(file, canonical, validation),
            Err(problem) => validation.problems.push(
                Diagnostic::at(&caller.file, uses.span, problem.message).with_label("used here"),
            ),
        }
    }
}

/// A runbook file beside `missing` whose name is close to it.
fn similar_file(missing: &Path) -> Option<String> {
    let wanted = missing.file_name()?.to_str()?;
    let names: Vec<String> = std::fs::read_dir(missing.parent()?)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    closest(wanted, names.iter().map(String::as_str)).map(str::to_owned)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| display_path(path), |n| n.to_string_lossy().into_owned())
}

/// A `uses:` path resolved against the file that names it.
pub fn resolve_uses(caller: &Path, uses: &str) -> PathBuf {
    caller.parent().unwrap_or(Path::new("")).join(uses)
}

/// `path` with `.` dropped and each `..` folded into the folder before it, without asking the
/// file system: `sub/../lib/x.yaml` is `lib/x.yaml`, the file a person would look for.
fn lexically_normal(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut normal = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(normal.components().next_back(), Some(Component::Normal(_))) =>
            {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    if normal.as_os_str().is_empty() {
        normal.push(".");
    }
    normal
}

#[cfg(test)]
mod lexical_tests {
    use super::lexically_normal;
    use std::path::Path;

    #[test]
    fn folds_parent_folders_into_the_folder_before_them() {
        let shown = |p: &str| lexically_normal(Path::new(p)).display().to_string();
        assert_eq!(shown("sub/../lib/x.yaml"), "lib/x.yaml");
        assert_eq!(shown("./a/./b/../c.yaml"), "a/c.yaml");
        assert_eq!(shown("../up/x.yaml"), "../up/x.yaml");
        assert_eq!(shown("a/../../x.yaml"), "../x.yaml");
        assert_eq!(shown("/r/a/../x.yaml"), "/r/x.yaml");
    }
}
