//! The crate's source as the compiler reads it: the root file and every file a
//! `mod` declaration names, followed the way rustc resolves them.

use std::path::{Path, PathBuf};

/// Longest source file read, in bytes.
const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Most files one crate may have.
const MAX_FILES: usize = 10_000;

/// What the walk finds, in source order.
pub enum Found<'a> {
    /// An item (not a module) of the module `module`, in `file`.
    Item {
        module: &'a str,
        file: &'a Path,
        item: &'a syn::Item,
    },
    /// A file this parser cannot read, whole.
    Unparsed {
        module: &'a str,
        file: &'a Path,
        text: &'a str,
    },
}

/// Walks the crate rooted at `root`, whose paths start with `krate`, calling
/// `visit` for every item of every module.
pub fn walk(root: &Path, krate: &str, visit: &mut dyn FnMut(Found<'_>)) -> Result<(), String> {
    let mut w = Walker { visit, files: 0 };
    let dir = root.parent().unwrap_or(Path::new(".")).to_owned();
    w.file(root, krate, &dir)
}

struct Walker<'v> {
    visit: &'v mut dyn FnMut(Found<'_>),
    files: usize,
}

impl Walker<'_> {
    /// Reads one file whose module is `module`; its child modules live in `dir`.
    fn file(&mut self, path: &Path, module: &str, dir: &Path) -> Result<(), String> {
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(format!("more than {MAX_FILES} source files"));
        }
        let text = crate::text::read_bounded(path, MAX_FILE)
            .ok_or_else(|| format!("cannot read {}", path.display()))?;
        match syn::parse_file(&text) {
            Ok(file) => self.items(&file.items, module, path, dir),
            // Syntax this parser does not know: the file counts as one item.
            Err(_) => {
                (self.visit)(Found::Unparsed {
                    module,
                    file: path,
                    text: &text,
                });
                Ok(())
            }
        }
    }

    fn items(
        &mut self,
        items: &[syn::Item],
        module: &str,
        file: &Path,
        dir: &Path,
    ) -> Result<(), String> {
        for item in items {
            let syn::Item::Mod(m) = item else {
                (self.visit)(Found::Item { module, file, item });
                continue;
            };
            let child = format!("{module}::{}", m.ident);
            let explicit = path_attr(&m.attrs);
            match &m.content {
                Some((_, inner)) => {
                    let sub = match &explicit {
                        Some(p) => dir.join(p),
                        None => dir.join(m.ident.to_string()),
                    };
                    self.items(inner, &child, file, &sub)?;
                }
                None => {
                    let (path, sub) = match explicit {
                        Some(p) => {
                            let f = dir.join(p);
                            let sub = f.parent().unwrap_or(dir).to_owned();
                            (f, sub)
                        }
                        None => {
                            let name = m.ident.to_string();
                            let flat = dir.join(format!("{name}.rs"));
                            if flat.is_file() {
                                (flat, dir.join(&name))
                            } else {
                                (dir.join(&name).join("mod.rs"), dir.join(&name))
                            }
                        }
                    };
                    self.file(&path, &child, &sub)?;
                }
            }
        }
        Ok(())
    }
}

/// `#[path = "..."]` of a module.
fn path_attr(attrs: &[syn::Attribute]) -> Option<PathBuf> {
    attrs.iter().find_map(|a| {
        let syn::Meta::NameValue(nv) = &a.meta else {
            return None;
        };
        if !nv.path.is_ident("path") {
            return None;
        }
        match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(PathBuf::from(s.value())),
            _ => None,
        }
    })
}
