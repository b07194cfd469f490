//! What a `jsonPath` costs: a rule's shape, read from its text, checked against fixed limits at PutWebhook, and
//! turned before every evaluation into an upper bound of the work it can do on that payload.
//!
//! `serde_json_path` evaluates a query by building node lists. A descendant segment (`..`) visits the whole
//! subtree of every node in the list, a filter runs its queries once for every candidate node, and a bracket
//! with several selectors (`[*,*]`) repeats the nodes it selects. Nested, these multiply:
//! `$..[?@..[?@..[?@..[?@..[?@..zz]]]]]` on a 5 KB payload nested a hundred deep is some 10^14 node visits.
//! An evaluation cannot be interrupted once it runs, so the cost has to be bounded before it starts:
//!
//! - [`check`] refuses shapes whose cost grows too fast with the payload ([`MAX_DESCENDANT_SEGMENTS`],
//!   [`MAX_FILTER_DEPTH`], [`MAX_SELECTOR_PRODUCT`], no `..` in a `$` query inside a filter); with the
//!   150-character limit on `jsonPath` this keeps every accepted rule polynomial of low degree;
//! - [`estimate`] bounds the node visits of a rule on a payload from the payload's node count, depth and widest
//!   node ([`PayloadStats`]); a rule over the caller's budget is not run at all.

use serde_json::Value;

/// Descendant segments (`..`) in one rule, filters included: each can multiply the work by the payload's depth.
pub const MAX_DESCENDANT_SEGMENTS: usize = 2;
/// Filters nested in filters (`[?@.a[?@.b]]` is 2 deep).
pub const MAX_FILTER_DEPTH: usize = 3;
/// The product, over every bracket of a rule, of its number of selectors (`['a','b']` is 2): a bracket with
/// several selectors repeats the nodes it selects, and the segments after it work on every copy.
pub const MAX_SELECTOR_PRODUCT: u64 = 16;

/// A query as far as its cost is concerned.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Shape {
    /// `$` (run from the root), rather than `@` (run from the node a filter tests).
    absolute: bool,
    segments: Vec<SegmentShape>,
}

#[derive(Debug, Clone, PartialEq)]
struct SegmentShape {
    descendant: bool,
    selectors: Vec<SelectorShape>,
}

#[derive(Debug, Clone, PartialEq)]
enum SelectorShape {
    /// A name or an index: at most one child per node.
    One,
    /// A wildcard or a slice: any number of children.
    Many,
    /// A filter: every child is a candidate; these queries run for each (a function's arguments included).
    Filter(Vec<Shape>),
}

impl Shape {
    /// Reads the shape of a query that `serde_json_path` accepted (rooted: starting with `$`). Never fails: on
    /// text it does not understand it stops early, which only matters for text the parser refused anyway.
    pub(crate) fn of(query: &str) -> Shape {
        let chars: Vec<char> = query.chars().collect();
        let mut scan = Scan { s: &chars, i: 0 };
        scan.ws();
        if matches!(scan.peek(), Some('$' | '@')) {
            scan.query()
        } else {
            Shape::default()
        }
    }

    /// True when the rule's cost does not depend on the payload (only names and indexes, no `..`).
    pub(crate) fn is_trivial(&self) -> bool {
        self.segments.iter().all(|s| !s.descendant && s.selectors.iter().all(|x| *x == SelectorShape::One))
    }

    fn descendants(&self) -> usize {
        self.segments
            .iter()
            .map(|s| {
                usize::from(s.descendant)
                    + s.filters().map(|q| q.iter().map(Shape::descendants).sum::<usize>()).sum::<usize>()
            })
            .sum()
    }

    fn filter_depth(&self) -> usize {
        self.segments
            .iter()
            .flat_map(SegmentShape::filters)
            .map(|queries| 1 + queries.iter().map(Shape::filter_depth).max().unwrap_or(0))
            .max()
            .unwrap_or(0)
    }

    fn selector_product(&self) -> u64 {
        self.segments.iter().fold(1u64, |acc, s| {
            let inner = s.filters().flatten().fold(1u64, |a, q| a.saturating_mul(q.selector_product()));
            acc.saturating_mul(s.selectors.len().max(1) as u64).saturating_mul(inner)
        })
    }

    /// A `$` query with a descendant segment inside a filter (it runs over the whole payload once per candidate).
    fn absolute_descendant_in_filter(&self) -> bool {
        self.segments
            .iter()
            .flat_map(SegmentShape::filters)
            .flatten()
            .any(|q| (q.absolute && q.descendants() > 0) || q.absolute_descendant_in_filter())
    }
}

impl SegmentShape {
    fn filters(&self) -> impl Iterator<Item = &Vec<Shape>> {
        self.selectors.iter().filter_map(|s| match s {
            SelectorShape::Filter(q) => Some(q),
            _ => None,
        })
    }
}

/// Refuses the shapes whose cost grows too fast with the payload; the message says which limit and why.
pub(crate) fn check(shape: &Shape) -> Result<(), String> {
    let descendants = shape.descendants();
    if descendants > MAX_DESCENDANT_SEGMENTS {
        return Err(format!(
            "{descendants} descendant segments (`..`), at most {MAX_DESCENDANT_SEGMENTS} \
             (each one can multiply the work by the payload's depth)"
        ));
    }
    let depth = shape.filter_depth();
    if depth > MAX_FILTER_DEPTH {
        return Err(format!("filters nested {depth} deep, at most {MAX_FILTER_DEPTH}"));
    }
    if shape.absolute_descendant_in_filter() {
        return Err("a `$` query inside a filter runs over the whole payload for every \
                    candidate node, so it may not contain a descendant segment (`..`)"
            .into());
    }
    let product = shape.selector_product();
    if product > MAX_SELECTOR_PRODUCT {
        return Err(format!(
            "brackets with several selectors repeat the nodes they select ({product} \
             copies), at most {MAX_SELECTOR_PRODUCT}"
        ));
    }
    Ok(())
}

/// What the cost of a rule on a payload depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PayloadStats {
    /// Values in the document, the root included.
    pub nodes: u64,
    /// The deepest value's depth (the root is 0).
    pub depth: u64,
    /// The most members or elements of one object or array.
    pub fanout: u64,
}

impl PayloadStats {
    /// Walks the document once, without recursion.
    pub fn of(payload: &Value) -> PayloadStats {
        let mut stats = PayloadStats { nodes: 0, depth: 0, fanout: 0 };
        let mut stack = vec![(payload, 0u64)];
        while let Some((v, depth)) = stack.pop() {
            stats.nodes += 1;
            stats.depth = stats.depth.max(depth);
            match v {
                Value::Array(items) => {
                    stats.fanout = stats.fanout.max(items.len() as u64);
                    stack.extend(items.iter().map(|c| (c, depth + 1)));
                }
                Value::Object(members) => {
                    stats.fanout = stats.fanout.max(members.len() as u64);
                    stack.extend(members.values().map(|c| (c, depth + 1)));
                }
                _ => {}
            }
        }
        stats
    }
}

/// A node list as the estimate sees it: at most `len` nodes, no node more than `mult` times.
#[derive(Debug, Clone, Copy)]
struct List {
    len: f64,
    mult: f64,
}

/// An upper bound of the node visits evaluating `shape` on a payload with these `stats` takes.
pub(crate) fn estimate(shape: &Shape, stats: &PayloadStats) -> f64 {
    let n = stats.nodes as f64;
    let start = List { len: 1.0, mult: 1.0 };
    let (work, _) = query_cost(shape, start, stats, n);
    work
}

/// The work of running `q` from every node of `start` (a relative query) or from the root (`start` is then the
/// root alone), and the list it yields.
fn query_cost(q: &Shape, start: List, stats: &PayloadStats, n: f64) -> (f64, List) {
    let levels = stats.depth as f64 + 1.0;
    let fanout = stats.fanout as f64;
    let mut cur = start;
    let mut work = cur.len;
    for seg in &q.segments {
        // The nodes the selectors are applied to: the list itself, or every node under each (each node is
        // reached once per occurrence of one of its ancestors, itself included).
        let (visited, vmult) = if seg.descendant {
            let vmult = cur.len.min(cur.mult * levels);
            ((cur.len * n).min(vmult * n), vmult)
        } else {
            (cur.len, cur.mult)
        };
        work += visited;
        // Their children: a node has one parent, so a child is there as often as its parent.
        let children = (visited * fanout).min(vmult * n);
        let mut out = List { len: 0.0, mult: 0.0 };
        for sel in &seg.selectors {
            match sel {
                SelectorShape::One => {
                    work += visited;
                    out.len += visited.min(vmult * n);
                }
                SelectorShape::Many => {
                    work += children;
                    out.len += children;
                }
                SelectorShape::Filter(queries) => {
                    work += children;
                    let candidates = List { len: children, mult: vmult };
                    for sub in queries {
                        if sub.absolute {
                            let (w, o) = query_cost(sub, List { len: 1.0, mult: 1.0 }, stats, n);
                            work += children * (w + o.len);
                        } else {
                            let (w, o) = query_cost(sub, candidates, stats, n);
                            work += w + o.len;
                        }
                    }
                    out.len += children;
                }
            }
            out.mult += vmult;
        }
        cur = out;
        work += cur.len;
    }
    (work, cur)
}

/// A cursor over a query's characters.
struct Scan<'a> {
    s: &'a [char],
    i: usize,
}

impl Scan<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.s.get(self.i + ahead).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
    }

    /// `$` or `@`, then segments.
    fn query(&mut self) -> Shape {
        let absolute = self.peek() == Some('$');
        self.i += 1;
        let mut segments = Vec::new();
        loop {
            let before = self.i;
            self.ws();
            let segment = match (self.peek(), self.peek_at(1)) {
                (Some('.'), Some('.')) => {
                    self.i += 2;
                    SegmentShape { descendant: true, selectors: self.after_dot() }
                }
                (Some('.'), _) => {
                    self.i += 1;
                    SegmentShape { descendant: false, selectors: self.after_dot() }
                }
                (Some('['), _) => SegmentShape { descendant: false, selectors: self.bracket() },
                _ => {
                    self.i = before;
                    break;
                }
            };
            segments.push(segment);
        }
        Shape { absolute, segments }
    }

    /// What follows `.` or `..`: a wildcard, a member name, or (after `..`) a bracket.
    fn after_dot(&mut self) -> Vec<SelectorShape> {
        match self.peek() {
            Some('[') => self.bracket(),
            Some('*') => {
                self.i += 1;
                vec![SelectorShape::Many]
            }
            _ => {
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_' || !c.is_ascii()) {
                    self.i += 1;
                }
                vec![SelectorShape::One]
            }
        }
    }

    /// `[` selectors separated by `,` `]`.
    fn bracket(&mut self) -> Vec<SelectorShape> {
        self.i += 1;
        let mut selectors = Vec::new();
        loop {
            self.ws();
            match self.peek() {
                None => break,
                Some(']') => {
                    self.i += 1;
                    break;
                }
                Some(',') => self.i += 1,
                Some('\'' | '"') => {
                    self.string();
                    selectors.push(SelectorShape::One);
                }
                Some('*') => {
                    self.i += 1;
                    selectors.push(SelectorShape::Many);
                }
                Some('?') => {
                    self.i += 1;
                    selectors.push(SelectorShape::Filter(self.expression()));
                }
                Some(_) => {
                    // An index (`0`, `-1`) or a slice (`1:`, `::2`).
                    let mut slice = false;
                    while let Some(c) = self.peek().filter(|c| !matches!(c, ',' | ']')) {
                        slice |= c == ':';
                        self.i += 1;
                    }
                    selectors.push(if slice { SelectorShape::Many } else { SelectorShape::One });
                }
            }
        }
        selectors
    }

    /// A filter's logical expression, up to the `,` or `]` that ends the selector: the queries in it, wherever
    /// they are (tests, comparisons, function arguments). Operators, literals and function names cost nothing.
    fn expression(&mut self) -> Vec<Shape> {
        let mut queries = Vec::new();
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                '\'' | '"' => self.string(),
                '$' | '@' => queries.push(self.query()),
                '(' => {
                    depth += 1;
                    self.i += 1;
                }
                ')' => {
                    depth = depth.saturating_sub(1);
                    self.i += 1;
                }
                ',' | ']' if depth == 0 => break,
                _ => self.i += 1,
            }
        }
        queries
    }

    /// A string literal, escapes included.
    fn string(&mut self) {
        let quote = self.peek();
        self.i += 1;
        while let Some(c) = self.peek() {
            self.i += 1;
            if c == '\\' {
                self.i += 1;
            } else if Some(c) == quote {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(nodes: u64, depth: u64, fanout: u64) -> PayloadStats {
        PayloadStats { nodes, depth, fanout }
    }

    #[test]
    fn shapes_are_read() {
        use SelectorShape::*;
        let seg = |descendant, selectors| SegmentShape { descendant, selectors };
        assert_eq!(
            Shape::of("$.a['b', 'c,]'][0][1:][*]..x..[?@.y == 'a]' && count($..z) > 1]"),
            Shape {
                absolute: true,
                segments: vec![
                    seg(false, vec![One]),
                    seg(false, vec![One, One]),
                    seg(false, vec![One]),
                    seg(false, vec![Many]),
                    seg(false, vec![Many]),
                    seg(true, vec![One]),
                    seg(
                        true,
                        vec![Filter(vec![
                            Shape { absolute: false, segments: vec![seg(false, vec![One])] },
                            Shape { absolute: true, segments: vec![seg(true, vec![One])] },
                        ])]
                    ),
                ],
            }
        );
        assert_eq!(Shape::of("$").segments, vec![]);
        assert!(Shape::of("$.a.b[0]['c']").is_trivial());
        assert!(!Shape::of("$..a").is_trivial());
        assert!(!Shape::of("$.a[*]").is_trivial());
        assert!(!Shape::of("$.a[?@.b]").is_trivial());
        assert_eq!(Shape::of("$.é.ü_1").segments.len(), 2);
    }

    #[test]
    fn limits() {
        let refused = |q: &str| check(&Shape::of(q)).expect_err(q);
        assert!(refused("$..[?@..[?@..[?@..[?@..[?@..zz]]]]]").contains("descendant segments"));
        assert!(refused("$..a..b..c").contains("3 descendant segments"));
        assert!(refused("$..[?@..[?@..x]]").contains("descendant"));
        assert!(refused("$[?@[?@[?@[?@.a]]]]").contains("nested 4 deep"));
        assert!(refused("$[?$..a]").contains("`$` query inside a filter"));
        assert!(refused("$.x[?count($..a) > 1]").contains("`$` query inside a filter"));
        assert!(refused("$[*,*,*,*,*][*,*,*,*]").contains("20 copies"));
        for ok in [
            "$.ref",
            "$..ref",
            "$..commits..id",
            "$..[?@..x]",
            "$..[?(@.name == 'x')].id",
            "$.commits[?@.message == 'docs'].id",
            "$.a[?@.b[?@.c[?@.d]]]",
            "$[?$.ref == 'refs/heads/main']",
            "$['a','b','c','d'][*,*,*,*]",
            "$[?@['a','b','c'][?@['a','b','c']]]",
            "$[?@.a == '..' && @.b == '[?@..x]']",
        ] {
            assert_eq!(check(&Shape::of(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn estimates_grow_with_the_shape() {
        // A GitHub push payload is about 700 nodes, 7 deep, 40 wide at most.
        let push = stats(700, 7, 40);
        let small = |q: &str| estimate(&Shape::of(q), &push);
        assert!(small("$.ref") < 10.0, "{}", small("$.ref"));
        assert!(small("$..ref") < 5_000.0, "{}", small("$..ref"));
        assert!(small("$..[?@..x]") < 100_000.0, "{}", small("$..[?@..x]"));
        // The example of the report: a 5 KB array nested 120 deep.
        let nested = stats(2_500, 120, 1);
        let e = estimate(&Shape::of("$..[?@..[?@..[?@..[?@..[?@..zz]]]]]"), &nested);
        assert!(e > 1e13, "{e}");
        // Several selectors repeat nodes.
        let wide = stats(1_000, 2, 500);
        let (copies, once) = (estimate(&Shape::of("$[*,*][*,*]"), &wide), estimate(&Shape::of("$[*][*]"), &wide));
        assert!(copies > 2.5 * once, "{copies} {once}");
    }

    #[test]
    fn payload_stats() {
        assert_eq!(PayloadStats::of(&json!(1)), stats(1, 0, 0));
        assert_eq!(PayloadStats::of(&json!({"a": [1, 2, 3], "b": {"c": null}})), stats(7, 2, 3));
        let mut deep = json!(0);
        for _ in 0..10_000 {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(PayloadStats::of(&deep), stats(10_001, 10_000, 1), "no recursion, so no stack overflow");
        // serde_json's own drop is recursive; leak the deep value rather than risk the test's stack.
        std::mem::forget(deep);
    }
}
