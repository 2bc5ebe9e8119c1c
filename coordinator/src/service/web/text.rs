//! Log bytes as safe HTML. A log is whatever a process wrote: invalid UTF-8 becomes U+FFFD,
//! SGR colour codes become spans with a class, and every other escape or control sequence
//! (cursor moves, titles, bells) is dropped, never shown raw. The parsing is vte's, the
//! terminal parser of alacritty; the text goes through maud, which escapes it.
//!
//! A [`Terminal`] keeps the parser and the current colours between chunks, so a live tail
//! renders a sequence or a character split across two chunks as one.

use maud::{html, Markup};

/// Colours and weight in effect: what a span's classes say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
}

impl Style {
    fn classes(self) -> String {
        let mut c = Vec::new();
        if let Some(fg) = self.fg {
            c.push(format!("fg{fg}"));
        }
        if let Some(bg) = self.bg {
            c.push(format!("bg{bg}"));
        }
        if self.bold {
            c.push("b".into());
        }
        c.join(" ")
    }

    /// Applies one SGR (`ESC [ … m`) parameter list.
    fn apply(&mut self, params: &vte::Params) {
        let mut it = params.iter().map(|p| p.first().copied().unwrap_or(0));
        if params.is_empty() {
            *self = Style::default();
        }
        while let Some(p) = it.next() {
            match p {
                0 => *self = Style::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                30..=37 => self.fg = Some((p - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((p - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((p - 90 + 8) as u8),
                100..=107 => self.bg = Some((p - 100 + 8) as u8),
                // 256-colour and true colour: the 16 base colours are kept, the rest dropped.
                38 | 48 => {
                    let colour = match it.next() {
                        Some(5) => it.next().filter(|n| *n < 16).map(|n| n as u8),
                        Some(2) => {
                            it.next();
                            it.next();
                            it.next();
                            None
                        }
                        _ => None,
                    };
                    if p == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
    }
}

/// A stream's rendering state: feed it chunks in order.
#[derive(Default)]
pub struct Terminal {
    parser: vte::Parser,
    style: Style,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Terminal")
    }
}

struct Collect {
    style: Style,
    runs: Vec<(Style, String)>,
}

impl Collect {
    fn push(&mut self, c: char) {
        match self.runs.last_mut() {
            Some((style, text)) if *style == self.style => text.push(c),
            _ => self.runs.push((self.style, c.to_string())),
        }
    }
}

impl vte::Perform for Collect {
    fn print(&mut self, c: char) {
        self.push(c);
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => self.push('\n'),
            b'\t' => self.push('\t'),
            _ => {}
        }
    }

    fn csi_dispatch(&mut self, params: &vte::Params, _: &[u8], _: bool, action: char) {
        if action == 'm' {
            self.style.apply(params);
        }
    }
}

impl Terminal {
    /// `bytes` as spans of escaped text.
    pub fn render(&mut self, bytes: &[u8]) -> Markup {
        let mut out = Collect {
            style: self.style,
            runs: Vec::new(),
        };
        self.parser.advance(&mut out, bytes);
        self.style = out.style;
        html! {
            @for (style, text) in &out.runs {
                @if *style == Style::default() { (text) }
                @else { span class=(style.classes()) { (text) } }
            }
        }
    }
}

/// A whole log at once.
pub fn render(bytes: &[u8]) -> Markup {
    Terminal::default().render(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_invalid_utf8_come_out_as_escaped_text() {
        let html = render(b"<script>alert(1)</script> \xff\xfe ok").into_string();
        assert_eq!(
            html,
            "&lt;script&gt;alert(1)&lt;/script&gt; \u{fffd}\u{fffd} ok"
        );
    }

    #[test]
    fn colours_become_spans_and_other_escapes_vanish() {
        let html =
            render(b"\x1b[31mred\x1b[0m plain \x1b[2J\x1b]0;title\x07\x1b[1;92mgo\x1b[m\r\n")
                .into_string();
        assert_eq!(
            html,
            "<span class=\"fg1\">red</span> plain <span class=\"fg10 b\">go</span>\n"
        );
    }

    #[test]
    fn a_sequence_split_across_chunks_is_still_one_sequence() {
        let mut t = Terminal::default();
        let a = t.render(b"x\x1b[3").into_string();
        let b = t.render(b"4mblue \xe2\x82").into_string();
        let c = t.render(b"\xac").into_string();
        assert_eq!(a, "x");
        assert_eq!(b, "<span class=\"fg4\">blue </span>");
        assert_eq!(c, "<span class=\"fg4\">\u{20ac}</span>");
    }
}
