//! What `#[patchable]` cannot patch, each refused at the user's span with why and
//! what to do instead.

use syn::{FnArg, GenericParam, ReturnType, Signature, Type};

/// Checks a signature; `Err` points at the offending part.
pub fn check_signature(sig: &Signature) -> syn::Result<()> {
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new_spanned(
            c,
            "`#[patchable]` cannot patch a `const fn`: its calls may be evaluated at compile \
             time and folded into constants, which no slot can redirect; remove `const`, or \
             keep the `const fn` and patch a non-const function that calls it",
        ));
    }
    for p in &sig.generics.params {
        match p {
            GenericParam::Type(t) => {
                return Err(syn::Error::new_spanned(
                    t,
                    "`#[patchable]` cannot patch a generic function: a slot holds one function \
                     pointer, but a generic function has one instance per type; patch a \
                     non-generic function (for example one per concrete type) instead",
                ));
            }
            GenericParam::Const(c) => {
                return Err(syn::Error::new_spanned(
                    c,
                    "`#[patchable]` cannot patch a function with const generics: each value \
                     has its own instance; patch a non-generic function instead",
                ));
            }
            GenericParam::Lifetime(_) => {}
        }
    }
    if let Some(w) = &sig.generics.where_clause {
        // Lifetime bounds only (`'a: 'b`, `Self: 'a`: what `#[async_trait]` writes).
        let only_lifetimes = w.predicates.iter().all(|p| match p {
            syn::WherePredicate::Lifetime(_) => true,
            syn::WherePredicate::Type(t) => {
                matches!(&t.bounded_ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"))
                    && t.bounds
                        .iter()
                        .all(|b| matches!(b, syn::TypeParamBound::Lifetime(_)))
            }
            _ => false,
        });
        if !only_lifetimes {
            return Err(syn::Error::new_spanned(
                w,
                "`#[patchable]` cannot patch a function with type bounds in `where`: patch a \
                 non-generic function instead",
            ));
        }
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new_spanned(
            v,
            "`#[patchable]` cannot patch a C-variadic function; patch a function that takes \
             a `VaList` or fixed arguments instead",
        ));
    }
    for input in &sig.inputs {
        if let FnArg::Typed(t) = input
            && let Some(span) = find_impl_trait(&t.ty)
        {
            return Err(syn::Error::new(
                span,
                "`#[patchable]` cannot patch a function with an `impl Trait` argument: it is \
                 generic, with one instance per type; take a concrete type or `&dyn Trait`",
            ));
        }
    }
    if let ReturnType::Type(_, t) = &sig.output
        && sig.asyncness.is_some()
        && borrows(t)
        && input_lifetimes(sig) > 1
    {
        return Err(syn::Error::new_spanned(
            t,
            "`#[patchable]` cannot patch an `async fn` that returns borrowed data while its \
             arguments borrow with more than one lifetime: its slot ties every borrow to one \
             lifetime; name one lifetime for the borrowed arguments and the result, for \
             example `async fn f<'a>(&'a self, key: &'a str) -> &'a str`",
        ));
    }
    if let ReturnType::Type(_, t) = &sig.output {
        if sig.asyncness.is_none()
            && let Some(span) = find_impl_trait(t)
        {
            return Err(syn::Error::new(
                span,
                "`#[patchable]` cannot patch a function returning `impl Trait`: a \
                 replacement would return another hidden type; return a concrete type or \
                 a `Box<dyn Trait>`",
            ));
        }
        if matches!(**t, Type::Never(_)) {
            return Err(syn::Error::new_spanned(
                t,
                "`#[patchable]` cannot patch a function returning `!`; return `()` and exit \
                 or panic inside instead",
            ));
        }
    }
    Ok(())
}

fn find_impl_trait(ty: &Type) -> Option<proc_macro2::Span> {
    use syn::visit::Visit;
    struct Find(Option<proc_macro2::Span>);
    impl<'a> Visit<'a> for Find {
        fn visit_type_impl_trait(&mut self, i: &'a syn::TypeImplTrait) {
            if self.0.is_none() {
                self.0 = Some(syn::spanned::Spanned::span(i));
            }
        }
    }
    let mut f = Find(None);
    f.visit_type(ty);
    f.0
}

/// Whether a type borrows: a reference or a lifetime other than `'static`.
fn borrows(ty: &Type) -> bool {
    use syn::visit::Visit;
    struct Find(bool);
    impl<'a> Visit<'a> for Find {
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            if r.lifetime.as_ref().is_none_or(|l| l.ident != "static") {
                self.0 = true;
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
            if l.ident != "static" {
                self.0 = true;
            }
        }
    }
    let mut f = Find(false);
    f.visit_type(ty);
    f.0
}

/// How many distinct lifetimes the arguments borrow with (each elided one
/// counts as its own).
fn input_lifetimes(sig: &Signature) -> usize {
    use syn::visit::Visit;
    #[derive(Default)]
    struct Count {
        named: Vec<String>,
        elided: usize,
    }
    impl<'a> Visit<'a> for Count {
        fn visit_type_reference(&mut self, r: &'a syn::TypeReference) {
            if r.lifetime.is_none() {
                self.elided += 1;
            }
            syn::visit::visit_type_reference(self, r);
        }
        fn visit_lifetime(&mut self, l: &'a syn::Lifetime) {
            if l.ident == "_" {
                self.elided += 1;
            } else if l.ident != "static" && !self.named.contains(&l.ident.to_string()) {
                self.named.push(l.ident.to_string());
            }
        }
    }
    let mut c = Count::default();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                if let Some((_, lt)) = &r.reference {
                    match lt {
                        Some(l) => c.visit_lifetime(l),
                        None => c.elided += 1,
                    }
                }
            }
            FnArg::Typed(t) => c.visit_type(&t.ty),
        }
    }
    c.named.len() + c.elided
}
