//! The module graph runs one way: read from the `crate::` paths in `src/` (outside the unit
//! tests, which may use any room to set things up), no room imports a room
//! above it in [`ORDER`], and no rooms import each other in a circle. This is the order of
//! `lib.rs`'s `# Layout` and of the design's dependency table; a change that needs an import
//! against it belongs in a lower room (move the shared type down), not in a new exception.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The rooms from the ground up. A room may import rooms on earlier lines and on its own line
/// (never in a circle), never a room on a later line.
const ORDER: &[&[&str]] = &[
    // Leaves: pure types and functions, and the transport's own pieces.
    &["protocol", "shutdown", "port_owner", "tls", "faults", "changes"],
    // The app table, signatures, and what a client can do wrong (Pusher codes).
    &["apps"],
    &["auth"],
    &["error"],
    // A published event and its source; what the test harness counts and keeps of them.
    &["event"],
    &["metrics", "history"],
    // The terminal log: typed lines about the layers below it.
    &["printer"],
    // This node's channels and sockets, and the multi-node seam over them.
    &["registry"],
    &["broker", "unreached"],
    // Side effects of the data path: webhooks and recordings.
    &["webhook"],
    &["recorder"],
    // The resolved settings, then the shared state with `publish` and membership changes.
    &["config"],
    &["state"],
    &["session"],
    // One HTTP/1.1 connection per socket, plain or TLS.
    &["accept"],
    // The edges.
    &["ws", "xhr", "rest", "control"],
    // Start-up: listeners, routes, the banner.
    &["server"],
    &["banner"],
    // The command line and its subcommands.
    &["cli"],
    &["commands"],
];

fn rank(room: &str) -> Option<usize> {
    ORDER.iter().position(|line| line.contains(&room))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The room a file of `src/` belongs to: `src/ws/mod.rs` → `ws`, `src/state.rs` → `state`.
fn room_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The code of a line without its `//` comment (a `//` inside a string literal cuts the line
/// short, which can only hide a path, never invent one).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |at| &line[..at])
}

/// The top-level rooms named after `crate::` in `text`: `crate::a::B`, and each item of a
/// `crate::{a::{B, C}, d}` group.
fn imports(text: &str) -> BTreeSet<String> {
    let mut rooms = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `pusher_local_crate::`, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start, mut end) = (0usize, 0usize, group.len());
            let mut items = Vec::new();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[item_start..i]);
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
            for item in items {
                rooms.extend(ident(item.trim()));
            }
            rest = &group[end..];
        } else {
            rooms.extend(ident(rest));
        }
    }
    rooms
}

fn ident(text: &str) -> Option<String> {
    let name: String = text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name != "self").then_some(name)
}

/// Every room's imports of other rooms, read from `src/` (main.rs, the binary, sits on top).
fn graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut graph: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in files {
        let room = room_of(&src, &file);
        if room == "main" || room == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // What is built into the program: a file's unit tests may use any room.
        let built = text.split("\n#[cfg(test)]\nmod ").next().unwrap_or_default();
        let code: String = built.lines().map(code).collect::<Vec<_>>().join("\n");
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        let edges = graph.entry(room.clone()).or_default();
        for target in imports(&code) {
            if target != room {
                edges.entry(target).or_default().push(shown.clone());
            }
        }
    }
    graph
}

#[test]
fn every_room_of_src_is_placed_in_the_order() {
    let unplaced: Vec<String> = graph().into_keys().filter(|room| rank(room).is_none()).collect();
    assert!(unplaced.is_empty(), "rooms missing from ORDER in tests/layers.rs: {unplaced:?}");
}

#[test]
fn no_room_imports_a_room_above_it() {
    let mut upward = Vec::new();
    for (room, edges) in graph() {
        let Some(own) = rank(&room) else { continue };
        for (target, files) in edges {
            match rank(&target) {
                Some(theirs) if theirs <= own => {}
                Some(_) => upward.push(format!("{room} → {target} (in {})", files.join(", "))),
                None => upward.push(format!("{room} → {target}: `{target}` is not a room of ORDER")),
            }
        }
    }
    assert!(upward.is_empty(), "imports that run up the data path:\n  {}", upward.join("\n  "));
}

#[test]
fn the_rooms_import_each_other_in_no_circle() {
    let graph = graph();
    // Depth-first search; a room met again while still on the path closes a circle.
    fn visit<'a>(
        room: &'a str,
        graph: &'a BTreeMap<String, BTreeMap<String, Vec<String>>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|r| *r == room) {
            let mut circle: Vec<String> = path[at..].iter().map(|r| (*r).to_owned()).collect();
            circle.push(room.to_owned());
            return Some(circle);
        }
        if !done.insert(room) {
            return None;
        }
        path.push(room);
        for target in graph.get(room).into_iter().flat_map(BTreeMap::keys) {
            if let Some(circle) = visit(target, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for room in graph.keys() {
        if let Some(circle) = visit(room, &graph, &mut Vec::new(), &mut done) {
            panic!("a circle of imports: {}", circle.join(" → "));
        }
    }
}

#[test]
fn the_reader_finds_every_form_of_crate_path() {
    let text = "use crate::a::B;\nuse crate::{c, d::{E, F}, self};\nlet x = crate::g::h();\n\
                let y = not_crate::i;";
    let found: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(found, ["a", "c", "d", "g"]);
    assert_eq!(code("let u = 1; // crate::z"), "let u = 1; ");
}
