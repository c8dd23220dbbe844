//! Elided lifetimes made explicit, so that generated items restating a
//! signature's types keep their relations.

use proc_macro2::Span;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericParam, ReturnType, Signature, Type};

/// Names the elided lifetimes of the arguments (`&T`, `'_`) `'__hotfix_lN`,
/// and those of the result by the elision rules (the receiver's, or the only
/// one of the arguments), so that every generated item that restates the
/// types (the thunks take them apart into tuples) keeps the same relations.
struct NameElided {
    added: Vec<syn::Lifetime>,
    /// Names already used by the signature.
    taken: Vec<String>,
}

impl NameElided {
    /// `'a`, `'b`, ... (what the compiler prints for elided lifetimes), skipping
    /// names the signature uses.
    fn fresh(&mut self) -> syn::Lifetime {
        let name = (0..)
            .map(|i: usize| match i {
                0..26 => format!("'{}", (b'a' + i as u8) as char),
                _ => format!("'l{i}"),
            })
            .find(|n| !self.taken.contains(n))
            .expect("an unused lifetime name");
        self.taken.push(name.clone());
        let lt = syn::Lifetime::new(&name, Span::call_site());
        self.added.push(lt.clone());
        lt
    }
}

impl VisitMut for NameElided {
    fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
        if lt.ident == "_" {
            *lt = self.fresh();
        }
    }
    fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
        if r.lifetime.is_none() {
            r.lifetime = Some(self.fresh());
        }
        syn::visit_mut::visit_type_reference_mut(self, r);
    }
    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {
        // Elided lifetimes inside a fn-pointer type belong to it.
    }
}

/// Every lifetime named in a type.
fn lifetimes_in(ty: &Type, out: &mut Vec<syn::Lifetime>) {
    use syn::visit::Visit;
    struct Collect<'a>(&'a mut Vec<syn::Lifetime>);
    impl<'a> Visit<'a> for Collect<'_> {
        fn visit_lifetime(&mut self, lt: &'a syn::Lifetime) {
            if lt.ident != "static" && !self.0.contains(lt) {
                self.0.push(lt.clone());
            }
        }
        fn visit_type_bare_fn(&mut self, _: &'a syn::TypeBareFn) {}
    }
    Collect(out).visit_type(ty);
}

/// `sig` with every elided lifetime of arguments and result named (see
/// [`NameElided`]); the new names are added to its generics.
pub fn name_elided(sig: &Signature) -> Signature {
    let mut s = sig.clone();
    let mut taken = Vec::new();
    {
        use syn::visit::Visit;
        struct Names<'a>(&'a mut Vec<String>);
        impl<'a> Visit<'a> for Names<'_> {
            fn visit_lifetime(&mut self, lt: &'a syn::Lifetime) {
                self.0.push(lt.to_string());
            }
        }
        Names(&mut taken).visit_signature(sig);
    }
    let mut v = NameElided {
        added: Vec::new(),
        taken,
    };
    let mut self_lt = None;
    let mut input_lts = Vec::new();
    for input in s.inputs.iter_mut() {
        match input {
            FnArg::Receiver(r) => {
                v.visit_type_mut(&mut r.ty);
                if let Type::Reference(rt) = &*r.ty {
                    self_lt = rt.lifetime.clone();
                    if let Some((_, lt)) = &mut r.reference {
                        *lt = rt.lifetime.clone();
                    }
                }
                lifetimes_in(&r.ty, &mut input_lts);
            }
            FnArg::Typed(t) => {
                v.visit_type_mut(&mut t.ty);
                lifetimes_in(&t.ty, &mut input_lts);
            }
        }
    }
    let out_lt = self_lt.or_else(|| (input_lts.len() == 1).then(|| input_lts[0].clone()));
    if let (ReturnType::Type(_, t), Some(out_lt)) = (&mut s.output, out_lt) {
        struct Output(syn::Lifetime);
        impl VisitMut for Output {
            fn visit_lifetime_mut(&mut self, lt: &mut syn::Lifetime) {
                if lt.ident == "_" {
                    *lt = self.0.clone();
                }
            }
            fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
                if r.lifetime.is_none() {
                    r.lifetime = Some(self.0.clone());
                }
                syn::visit_mut::visit_type_reference_mut(self, r);
            }
            fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}
        }
        Output(out_lt).visit_type_mut(t);
    }
    for lt in v.added {
        s.generics
            .params
            .push(GenericParam::Lifetime(syn::LifetimeParam::new(lt)));
    }
    s
}
