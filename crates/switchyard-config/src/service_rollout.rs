//! The safe-rollout tables of a service: `[services.NAME.mirror]` and `[services.NAME.guard]`.

use crate::raw::{RawGuard, RawMirror, RawService};
use crate::rules;
use crate::types::{GuardConfig, MirrorConfig};
use crate::validate::Checker;

impl Checker<'_, '_> {
    /// `[services.NAME.mirror]`: the pool (one of the service's), the share, the methods and
    /// the bound; `None` when it has a problem (already recorded).
    pub(crate) fn mirror(
        &mut self,
        base: &str,
        raw: &RawMirror,
        service: &RawService,
    ) -> Option<MirrorConfig> {
        let p = |key: &str| format!("{base}.mirror.{key}");
        let d = MirrorConfig::new("");
        let Some(to) = &raw.to else {
            self.error(&(0..0), &p("to"), "name the pool the copies go to");
            return None;
        };
        let known = service
            .pools
            .as_ref()
            .is_none_or(|pools| pools.get_ref().keys().any(|k| k.get_ref() == to.get_ref()));
        if !known {
            self.error(
                &to.span(),
                &p("to"),
                format!("the service has no pool `{}`", to.get_ref()),
            );
            return None;
        }
        let percent = self.int(
            raw.percent.as_ref(),
            &p("percent"),
            rules::IntRule { min: 0, max: 100 },
            d.percent,
        )?;
        let max_in_flight = self.int(
            raw.max_in_flight.as_ref(),
            &p("max_in_flight"),
            rules::IntRule {
                min: 1,
                max: 100_000,
            },
            d.max_in_flight,
        )?;
        let mut methods = Vec::new();
        match &raw.methods {
            None => methods = d.methods,
            Some(list) => {
                for (i, m) in list.get_ref().iter().enumerate() {
                    let name = m.get_ref().to_ascii_uppercase();
                    let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic());
                    if !token || name == "CONNECT" {
                        self.error(
                            &m.span(),
                            &format!("{}[{i}]", p("methods")),
                            format!("`{}` is not a method that can be copied", m.get_ref()),
                        );
                        return None;
                    }
                    methods.push(name);
                }
            }
        }
        Some(MirrorConfig {
            to: to.get_ref().clone(),
            percent,
            methods,
            max_in_flight,
        })
    }

    /// `[services.NAME.guard]`: the window and the rules of the automatic rollback.
    pub(crate) fn guard(&mut self, base: &str, raw: &RawGuard) -> GuardConfig {
        let d = GuardConfig::default();
        let p = |key: &str| format!("{base}.guard.{key}");
        let window = self
            .duration(raw.window.as_ref(), &p("window"), d.window, true)
            .unwrap_or(d.window);
        let rate = raw.max_error_rate.as_ref().and_then(|v| {
            let value = *v.get_ref();
            self.check(&v.span(), &p("max_error_rate"), rules::ratio(value))
                .map(|()| value)
        });
        let factor = raw.max_p99_factor.as_ref().and_then(|v| {
            let value = *v.get_ref();
            let checked = if value.is_finite() && value >= 0.0 {
                Ok(value)
            } else {
                Err(format!("must be 0 (off) or more, got {value}"))
            };
            self.check(&v.span(), &p("max_p99_factor"), checked)
        });
        let min_requests = self
            .int(
                raw.min_requests.as_ref(),
                &p("min_requests"),
                rules::IntRule {
                    min: 1,
                    max: 1_000_000_000,
                },
                d.min_requests,
            )
            .unwrap_or(d.min_requests);
        GuardConfig {
            window,
            max_error_rate: rate.unwrap_or(d.max_error_rate),
            min_requests,
            max_p99_factor: factor.unwrap_or(d.max_p99_factor),
        }
    }
}
