//! Ollama's `deleteNode` for the final legacy turn: walking the tree in order,
//! the first `.Response` field is kept (it renders empty) and every node after
//! it is removed, so the prompt ends where the model's answer begins.
//!
//! Like Ollama, control-structure pipelines are not inspected, only their
//! bodies, and an action is dropped when a command loses all its arguments.

use crate::ast::{Arg, Branch, Node, Pipeline};

pub(super) fn cut_after_response(root: &[Node]) -> Vec<Node> {
    let mut cut = false;
    list(root, &mut cut)
}

fn list(nodes: &[Node], cut: &mut bool) -> Vec<Node> {
    nodes.iter().filter_map(|n| node(n, cut)).collect()
}

fn node(n: &Node, cut: &mut bool) -> Option<Node> {
    if *cut {
        return None;
    }
    Some(match n {
        Node::Action(p) => Node::Action(pipeline(p, cut)?),
        Node::If(b) => Node::If(branch(b, cut)),
        Node::With(b) => Node::With(branch(b, cut)),
        Node::Range(b) => Node::Range(branch(b, cut)),
        other => other.clone(),
    })
}

fn branch(b: &Branch, cut: &mut bool) -> Branch {
    let body = list(&b.list, cut);
    // Go would crash on a removed else list; an empty one renders the same.
    let else_list = b.else_list.as_ref().map(|e| list(e, cut));
    Branch { pipe: b.pipe.clone(), list: body, else_list }
}

fn pipeline(p: &Pipeline, cut: &mut bool) -> Option<Pipeline> {
    let mut out = p.clone();
    out.cmds.clear();
    for c in &p.cmds {
        let mut cmd = c.clone();
        cmd.args = c.args.iter().filter_map(|a| arg(a, cut)).collect();
        if cmd.args.is_empty() {
            return None;
        }
        out.cmds.push(cmd);
    }
    (!out.cmds.is_empty()).then_some(out)
}

fn arg(a: &Arg, cut: &mut bool) -> Option<Arg> {
    if *cut {
        return None;
    }
    match a {
        Arg::Field(idents) if idents.iter().any(|i| i == "Response") => {
            *cut = true;
            Some(a.clone())
        }
        Arg::Pipe(p) => pipeline(p, cut).map(|p| Arg::Pipe(Box::new(p))),
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::funcs::FuncSet;
    use crate::parser::parse;

    fn cut_src(src: &str) -> Vec<Node> {
        cut_after_response(&parse(src, &|n| FuncSet::Ollama.contains(n)).unwrap().root)
    }

    #[test]
    fn drops_everything_after_response() {
        let nodes = cut_src("a{{ .Response }}b{{ .X }}");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0], Node::Text("a".into()));
    }

    #[test]
    fn cuts_inside_blocks_but_ignores_their_conditions() {
        let nodes = cut_src("{{ if .Response }}x{{ .Response }}<end>{{ end }}tail");
        let [Node::If(b)] = nodes.as_slice() else { panic!("{nodes:?}") };
        assert_eq!(b.list.len(), 2);
    }

    #[test]
    fn action_with_later_stage_is_dropped() {
        assert!(cut_src("{{ .Response | print }}").is_empty());
    }
}
