//! The few handlebars helpers every template may use, for laying out plain-text tables.
//!
//! - `{{pad value width}}`: the value followed by spaces up to `width` characters (never cut);
//! - `{{upper value}}`: the value in capitals (a plain-text heading);
//! - `{{#trim_end}}…{{/trim_end}}`: what the block renders, without trailing spaces (a table
//!   row whose last cells are blank).
//!
//! Must not: compute anything a template's data should carry (widths, wording, dates come in the
//! data); escape (each registry escapes, or not, as it was built).

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
    Renderable, StringOutput,
};

/// Register the helpers on one registry.
pub(super) fn register(h: &mut Handlebars<'static>) {
    h.register_helper("pad", Box::new(pad));
    h.register_helper("upper", Box::new(upper));
    h.register_helper("trim_end", Box::new(trim_end));
}

/// A helper's parameter as text: a string as it is, anything else as JSON renders it.
fn text_param(h: &Helper<'_>, i: usize, helper: &'static str) -> Result<String, RenderErrorReason> {
    let v = h
        .param(i)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex(helper, i))?
        .value();
    Ok(match v.as_str() {
        Some(s) => s.to_string(),
        None => handlebars::JsonRender::render(v),
    })
}

fn pad(
    h: &Helper<'_>,
    r: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = text_param(h, 0, "pad")?;
    let width = h
        .param(1)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("pad", 1))?
        .value()
        .as_u64()
        .ok_or_else(|| {
            RenderErrorReason::InvalidParamType("pad: the width must be a whole number")
        })?;
    let width = usize::try_from(width).unwrap_or(usize::MAX);
    let fill = width.saturating_sub(value.chars().count());
    out.write(&r.get_escape_fn()(&value))?;
    out.write(&" ".repeat(fill))?;
    Ok(())
}

fn upper(
    h: &Helper<'_>,
    r: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let value = text_param(h, 0, "upper")?;
    out.write(&r.get_escape_fn()(&value.to_uppercase()))?;
    Ok(())
}

fn trim_end<'reg, 'rc>(
    h: &Helper<'rc>,
    r: &'reg Handlebars<'reg>,
    ctx: &'rc Context,
    rc: &mut RenderContext<'reg, 'rc>,
    out: &mut dyn Output,
) -> HelperResult {
    let mut inner = StringOutput::new();
    if let Some(t) = h.template() {
        t.render(r, ctx, rc, &mut inner)?;
    }
    out.write(inner.into_string()?.trim_end_matches(' '))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::core::letters::Templates;
    use serde_json::json;

    fn render(text: &str, data: serde_json::Value) -> (String, String) {
        let sources: Vec<(String, String)> = ["subject", "text", "html"]
            .iter()
            .map(|p| (format!("t.{p}"), text.to_string()))
            .collect();
        let t = Templates::from_sources("test", &sources).unwrap();
        let r = t.render("t", &data).unwrap();
        (r.text, r.html)
    }

    #[test]
    fn pad_fills_a_value_with_spaces_to_a_width_in_characters_and_never_cuts() {
        let (text, _) = render(
            "[{{pad a 6}}][{{pad b 6}}][{{pad c 2}}][{{pad n 3}}]",
            json!({"a": "Case", "b": "Ünï", "c": "longer", "n": 7}),
        );
        assert_eq!(text, "[Case  ][Ünï   ][longer][7  ]");
    }

    #[test]
    fn pad_and_upper_escape_in_the_html_part_only() {
        let (text, html) = render("{{pad a 8}}|{{upper a}}", json!({"a": "A & b"}));
        assert_eq!(text, "A & b   |A & B");
        assert_eq!(html, "A &amp; b   |A &amp; B");
    }

    #[test]
    fn trim_end_drops_the_trailing_spaces_of_what_it_wraps_and_nothing_else() {
        let (text, _) = render(
            "{{#trim_end}}  {{#each cells}}{{pad this 4}}{{/each}}{{/trim_end}}|",
            json!({"cells": ["a", "b", ""]}),
        );
        assert_eq!(text, "  a   b|");
    }

    #[test]
    fn a_pad_without_a_width_is_an_error_naming_the_template() {
        let sources: Vec<(String, String)> = ["subject", "text", "html"]
            .iter()
            .map(|p| (format!("t.{p}"), "{{pad a}}".to_string()))
            .collect();
        let t = Templates::from_sources("test", &sources).unwrap();
        let err = t.render("t", &json!({"a": "x"})).unwrap_err().to_string();
        assert!(err.contains("t.subject"), "{err}");
    }
}
