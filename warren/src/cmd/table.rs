//! The plain-text tables the commands print (`warren nodes`, `mesh`,
//! `status`, `token list`): a header, then one line a row. Each column is as
//! wide as its widest cell, columns are two spaces apart and no line ends in
//! a space, so a long name widens its column instead of pushing the rest of
//! its row out of line.

use std::fmt;

/// Which side of its column a cell keeps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Names, addresses and states.
    Left,
    /// Quantities (times, byte counts), so that their units line up.
    Right,
}

/// A table of `N` columns, filled row by row and rendered by `Display`.
pub struct Table<const N: usize> {
    columns: [(&'static str, Align); N],
    rows: Vec<[String; N]>,
}

impl<const N: usize> Table<N> {
    /// A table with these columns: each a header and an alignment (the
    /// header is aligned like the cells below it).
    pub fn new(columns: [(&'static str, Align); N]) -> Self {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row, one cell a column. Control characters are shown
    /// escaped (`\u{1b}`): cells carry what nodes report (architecture,
    /// Docker version, errors), and a node must not be able to move the
    /// cursor or rewrite the operator's terminal.
    pub fn row(&mut self, cells: [&dyn fmt::Display; N]) {
        self.rows
            .push(cells.map(|cell| printable(&cell.to_string())));
    }

    fn widths(&self) -> [usize; N] {
        let mut widths = self.columns.map(|(header, _)| width(header));
        for row in &self.rows {
            for (widest, cell) in widths.iter_mut().zip(row) {
                *widest = (*widest).max(width(cell));
            }
        }
        widths
    }
}

impl<const N: usize> fmt::Display for Table<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let header = self.columns.map(|(header, _)| header.to_owned());
        let mut line = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            line.clear();
            for (index, cell) in row.iter().enumerate() {
                if index > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[index] - width(cell));
                match self.columns[index].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            writeln!(f, "{}", line.trim_end_matches(' '))?;
        }
        Ok(())
    }
}

/// `text` with its control characters escaped.
fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// How many columns `text` takes on a terminal, counting one a character
/// (names are ASCII in practice; wide characters would count as one).
fn width(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::Align::{Left, Right};
    use super::*;

    #[test]
    fn control_characters_in_cells_are_shown_escaped() {
        let mut table = Table::new([("NODE", Left), ("ARCH", Left)]);
        table.row([&"pi", &"amd64\u{1b}[2J\r\n"]);
        let text = table.to_string();
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().nth(1), Some("pi    amd64\\u{1b}[2J\\r\\n"));
    }

    fn pets() -> Table<3> {
        let mut table = Table::new([("NAME", Left), ("KIND", Left), ("AGE", Right)]);
        table.row([&"rex", &"dog", &7]);
        table.row([&"tiddles", &"cat", &12]);
        table
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_two_spaces_apart() {
        assert_eq!(
            pets().to_string(),
            "NAME     KIND  AGE\n\
             rex      dog     7\n\
             tiddles  cat    12\n"
        );
    }

    #[test]
    fn a_header_wider_than_its_cells_sets_the_width() {
        let mut table = Table::new([("ID", Left), ("HANDSHAKE", Right)]);
        table.row([&1, &"7s ago"]);
        assert_eq!(table.to_string(), "ID  HANDSHAKE\n1      7s ago\n");
    }

    #[test]
    fn a_long_name_widens_its_column_and_the_others_stay_aligned() {
        let mut table = pets();
        table.row([&"a-very-long-name-for-a-hamster", &"hamster", &1]);
        let text = table.to_string();
        let lines: Vec<&str> = text.lines().collect();
        // KIND starts at the same offset on every line, after the long name
        // and two spaces; AGE, right-aligned, ends every line.
        let kind = lines[0].find("KIND").unwrap();
        assert_eq!(kind, "a-very-long-name-for-a-hamster  ".len());
        for line in &lines {
            assert_eq!(line.chars().count(), lines[0].chars().count(), "{text}");
            assert_eq!(&line[kind - 2..kind], "  ", "{text}");
        }
        assert_eq!(&lines[1][kind..kind + 3], "dog");
        assert_eq!(&lines[3][kind..kind + 7], "hamster");
    }

    #[test]
    fn no_line_ends_in_a_space() {
        let mut table = Table::new([("NAME", Left), ("NOTE", Left)]);
        table.row([&"a", &""]);
        table.row([&"b", &"short"]);
        table.row([&"c", &"much longer note"]);
        let text = table.to_string();
        assert_eq!(text, "NAME  NOTE\na\nb     short\nc     much longer note\n");
        assert!(text.lines().all(|line| !line.ends_with(' ')), "{text:?}");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new([("NAME", Left), ("N", Right)]);
        table.row([&"zürich", &1]);
        table.row([&"bern", &2]);
        assert_eq!(table.to_string(), "NAME    N\nzürich  1\nbern    2\n");
    }

    #[test]
    fn a_table_without_rows_is_its_header() {
        let table = Table::new([("FROM", Left), ("RTT", Right)]);
        assert_eq!(table.to_string(), "FROM  RTT\n");
    }
}
