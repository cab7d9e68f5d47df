//! Errors from parsing and executing templates, positioned by line and column.

use thiserror::Error;

/// A 1-based line and column in the template source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// Computes the position of byte `offset` in `src` (columns count characters).
    pub(crate) fn locate(src: &str, offset: usize) -> Position {
        let offset = offset.min(src.len());
        let before = &src[..floor_char_boundary(src, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line, column: before[line_start..].chars().count() + 1 }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum TemplateError {
    #[error("template: {pos}: {message}")]
    Parse { pos: Position, message: String },
    #[error("template: {pos}: executing at <{context}>: {message}")]
    Exec { pos: Position, context: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_counts_lines_and_characters() {
        let src = "ab\ncé{{x";
        assert_eq!(Position::locate(src, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::locate(src, 3), Position { line: 2, column: 1 });
        assert_eq!(Position::locate(src, 6), Position { line: 2, column: 3 });
        assert_eq!(Position::locate(src, 99), Position { line: 2, column: 6 });
    }

    #[test]
    fn display_includes_position() {
        let e = TemplateError::Parse { pos: Position { line: 2, column: 5 }, message: "unexpected EOF".into() };
        assert_eq!(e.to_string(), "template: 2:5: unexpected EOF");
    }
}
