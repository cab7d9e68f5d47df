//! The parse tree of a template. Positions are byte offsets into the source.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    Action(Pipeline),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template { pos: usize, name: String, pipe: Option<Pipeline> },
    Break(usize),
    Continue(usize),
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Branch {
    pub pipe: Pipeline,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipeline {
    pub pos: usize,
    /// Variables declared (`:=`) or assigned (`=`) by the pipeline.
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Dot,
    Nil,
    Literal(Literal),
    /// `.A.B`: field chain on dot.
    Field(Vec<String>),
    /// `$x.A.B`: variable with optional field chain.
    Variable(String, Vec<String>),
    /// A function name.
    Function(String),
    /// A parenthesised pipeline.
    Pipe(Box<Pipeline>),
    /// `(pipeline).A.B`.
    Chain(Box<Arg>, Vec<String>),
}
