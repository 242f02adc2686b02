//! Just enough JSON to read iperf3's `-J` report: a recursive-descent parser
//! into a [`Json`] tree and path lookups. No serde for one small document.

use anyhow::{bail, Context, Result};

/// A parsed JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any number (iperf3's byte counts fit an f64 exactly below 2⁵³).
    Num(f64),
    /// A string, escapes decoded.
    Str(String),
    /// An array.
    Arr(Vec<Json>),
    /// An object, keys in document order.
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// Parses a complete document (trailing whitespace allowed).
    pub fn parse(text: &str) -> Result<Json> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p
            .value()
            .with_context(|| format!("invalid JSON near byte {}", p.i))?;
        p.ws();
        if p.i != p.s.len() {
            bail!("invalid JSON: trailing data at byte {}", p.i);
        }
        Ok(v)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows object keys: `at(&["end", "sum", "bytes"])`.
    pub fn at(&self, path: &[&str]) -> Option<&Json> {
        path.iter().try_fold(self, |v, k| v.get(k))
    }

    /// The number at `path`, or an error naming the path.
    pub fn num(&self, path: &[&str]) -> Result<f64> {
        match self.at(path) {
            Some(Json::Num(n)) => Ok(*n),
            Some(other) => bail!("{} is not a number: {other:?}", path.join(".")),
            None => bail!("{} is missing", path.join(".")),
        }
    }

    /// The string at `path`, if there is one.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        match self.at(path) {
            Some(Json::Str(s)) => Some(s),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Result<u8> {
        self.ws();
        self.s.get(self.i).copied().context("unexpected end")
    }

    fn expect(&mut self, b: u8) -> Result<()> {
        if self.peek()? != b {
            bail!("expected {:?}", b as char);
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json> {
        if !self.s[self.i..].starts_with(word.as_bytes()) {
            bail!("expected {word}");
        }
        self.i += word.len();
        Ok(v)
    }

    fn value(&mut self) -> Result<Json> {
        match self.peek()? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Json::Str),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            _ => self.number(),
        }
    }

    fn object(&mut self) -> Result<Json> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(Json::Obj(members));
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.expect(b':')?;
            members.push((key, self.value()?));
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(Json::Obj(members));
                }
                _ => bail!("expected ',' or '}}'"),
            }
        }
    }

    fn array(&mut self) -> Result<Json> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(Json::Arr(items));
                }
                _ => bail!("expected ',' or ']'"),
            }
        }
    }

    fn string(&mut self) -> Result<String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i).context("unterminated string")?;
            self.i += 1;
            match b {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = *self.s.get(self.i).context("unterminated escape")?;
                    self.i += 1;
                    let c = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => self.unicode_escape()?,
                        other => other as char,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => out.push(other),
            }
        }
    }

    /// `\uXXXX` (a lone surrogate becomes U+FFFD; iperf3 never writes one).
    fn unicode_escape(&mut self) -> Result<char> {
        let hex = self.s.get(self.i..self.i + 4).context("short \\u escape")?;
        self.i += 4;
        let code = u32::from_str_radix(std::str::from_utf8(hex)?, 16).context("bad \\u escape")?;
        Ok(char::from_u32(code).unwrap_or('\u{fffd}'))
    }

    fn number(&mut self) -> Result<Json> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i])?;
        let n = text
            .parse::<f64>()
            .with_context(|| format!("bad value {text:?}"))?;
        Ok(Json::Num(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_documents() -> Result<()> {
        let j = Json::parse(
            r#" {"start": {"version": "iperf 3.12", "x": [1, 2.5e3, -3]},
                 "end": {"sum_received": {"bytes": 123456789, "ok": true, "n": null}},
                 "error": "a \"quoted\" \u00e9"} "#,
        )?;
        assert_eq!(j.num(&["end", "sum_received", "bytes"])?, 123_456_789.0);
        assert_eq!(j.str_at(&["start", "version"]), Some("iperf 3.12"));
        assert_eq!(j.str_at(&["error"]), Some("a \"quoted\" é"));
        assert_eq!(
            j.at(&["start", "x"]),
            Some(&Json::Arr(vec![
                Json::Num(1.0),
                Json::Num(2500.0),
                Json::Num(-3.0)
            ]))
        );
        assert!(j.num(&["end", "nope"]).is_err());
        Ok(())
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "{} x", "\"open"] {
            assert!(Json::parse(bad).is_err(), "{bad:?}");
        }
    }
}
