//! What a model's license obliges its user to do, for the licenses Kiln knows.
//!
//! A license is identified from its text: each known license has signatures, sets of phrases
//! that together occur only in that license's own text (its title and a line of its opening,
//! such as a release date), compared as lower-case words so that case, line breaks and
//! punctuation do not matter. A text that only *mentions* a license ("licensed under the Llama
//! 3.2 Community License Agreement") has the title but not the rest of the signature, and stays
//! unknown: Kiln summarises a license only when it is looking at that license.
//!
//! The text decides whenever there is one; GGUF's `general.license` id is used only when the
//! model carries no license text. The text is what the user actually received, while ids are
//! coarse (`other`), sometimes copied from the wrong model card, and say nothing about terms
//! added to a familiar license, so an id must never put a summary on a text Kiln cannot read.
//!
//! Anything ambiguous is unknown rather than guessed: a text matching two licenses' signatures,
//! or one that names a model license besides the one identified (a permissive license for the
//! code next to a model license for the weights). Mentions of MIT or Apache-2.0 inside another
//! license do not count, as they add no model terms.
//!
//! DeepSeek models are licensed either way: the DeepSeek License Agreement covers DeepSeek LLM,
//! Coder, V2 and the first V3 weights, while DeepSeek-R1 and later V3 releases are MIT. The model
//! name decides nothing here; the text does.

/// A license whose obligations Kiln can summarise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownLicense {
    Mit,
    Apache2,
    /// The Meta Llama 3 Community License Agreement (April 2024).
    Llama3,
    Llama3_1,
    Llama3_2,
    Llama3_3,
    /// The Gemma Terms of Use, which cover every Gemma generation.
    Gemma,
    /// The Qwen License Agreement (2024) and its predecessor, the Tongyi Qianwen License
    /// Agreement (2023), which share their structure and the 100 million MAU threshold.
    Qwen,
    /// The non-commercial Qwen Research License Agreement and its Tongyi Qianwen predecessor.
    QwenResearch,
    /// The DeepSeek License Agreement 1.0 (October 2023).
    DeepSeek,
}

/// What a text was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    Known(KnownLicense),
    Unknown,
}

/// Whether the license lets the model be used commercially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommercialUse {
    Allowed,
    /// Allowed only under a condition, given as a sentence ("Allowed unless ...").
    Conditional(&'static str),
    NotAllowed,
}

/// A plain-language summary of a license: each point is one sentence, written for Kiln, and
/// none of it is legal advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LicenseSummary {
    pub name: &'static str,
    pub commercial_use: CommercialUse,
    /// What a user must do, mostly when passing the model or a derivative on.
    pub obligations: &'static [&'static str],
    /// What a user must not do, and what the licensor keeps the right to do.
    pub restrictions: &'static [&'static str],
    /// Where the authoritative text is published.
    pub source_url: &'static str,
}

impl KnownLicense {
    pub const ALL: [KnownLicense; 10] = [
        KnownLicense::Mit,
        KnownLicense::Apache2,
        KnownLicense::Llama3,
        KnownLicense::Llama3_1,
        KnownLicense::Llama3_2,
        KnownLicense::Llama3_3,
        KnownLicense::Gemma,
        KnownLicense::Qwen,
        KnownLicense::QwenResearch,
        KnownLicense::DeepSeek,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KnownLicense::Mit => "MIT License",
            KnownLicense::Apache2 => "Apache License 2.0",
            KnownLicense::Llama3 => "Meta Llama 3 Community License Agreement",
            KnownLicense::Llama3_1 => "Llama 3.1 Community License Agreement",
            KnownLicense::Llama3_2 => "Llama 3.2 Community License Agreement",
            KnownLicense::Llama3_3 => "Llama 3.3 Community License Agreement",
            KnownLicense::Gemma => "Gemma Terms of Use",
            KnownLicense::Qwen => "Qwen License Agreement",
            KnownLicense::QwenResearch => "Qwen Research License Agreement",
            KnownLicense::DeepSeek => "DeepSeek License Agreement",
        }
    }

    /// The SPDX identifier where there is one, else the id Hugging Face model cards (and so
    /// GGUF's `general.license`) use.
    pub fn spdx_or_id(self) -> &'static str {
        self.ids()[0]
    }

    /// The license for a `general.license` id (or an SPDX id), compared case-insensitively.
    /// `other` and every id not listed here are `None`.
    pub fn from_id(id: &str) -> Option<KnownLicense> {
        let id = id.trim();
        KnownLicense::ALL.into_iter().find(|l| l.ids().iter().any(|known| known.eq_ignore_ascii_case(id)))
    }

    /// The canonical id first, then the older names model cards still carry.
    fn ids(self) -> &'static [&'static str] {
        match self {
            KnownLicense::Mit => &["MIT"],
            KnownLicense::Apache2 => &["Apache-2.0"],
            KnownLicense::Llama3 => &["llama3"],
            KnownLicense::Llama3_1 => &["llama3.1"],
            KnownLicense::Llama3_2 => &["llama3.2"],
            KnownLicense::Llama3_3 => &["llama3.3"],
            KnownLicense::Gemma => &["gemma"],
            KnownLicense::Qwen => &["qwen", "tongyi-qianwen"],
            KnownLicense::QwenResearch => &["qwen-research", "tongyi-qianwen-research"],
            KnownLicense::DeepSeek => &["deepseek", "deepseek-license"],
        }
    }

    /// Phrase sets of which any one, found whole, identifies the license's own text.
    fn signatures(self) -> &'static [&'static [&'static str]] {
        match self {
            KnownLicense::Mit => &[&[
                "Permission is hereby granted, free of charge, to any person obtaining a copy",
                "The above copyright notice and this permission notice shall be included in all copies or \
                 substantial portions",
            ]],
            KnownLicense::Apache2 => &[
                // The license itself, and the notice the license's appendix tells licensors to
                // put in their files: both state the terms without changing them.
                &[
                    "Apache License",
                    "Version 2.0, January 2004",
                    "Terms and conditions for use, reproduction, and distribution",
                ],
                &[
                    "Licensed under the Apache License, Version 2.0",
                    "you may not use this file except in compliance with the License",
                ],
            ],
            KnownLicense::Llama3 => {
                &[&["Meta Llama 3 Community License Agreement", "Meta Llama 3 Version Release Date"]]
            }
            KnownLicense::Llama3_1 => &[&["Llama 3.1 Community License Agreement", "Llama 3.1 Version Release Date"]],
            KnownLicense::Llama3_2 => &[&["Llama 3.2 Community License Agreement", "Llama 3.2 Version Release Date"]],
            KnownLicense::Llama3_3 => &[&["Llama 3.3 Community License Agreement", "Llama 3.3 Version Release Date"]],
            KnownLicense::Gemma => &[&["Gemma Terms of Use", "Gemma Services", "Model Derivatives"]],
            KnownLicense::Qwen => &[
                &["Qwen LICENSE AGREEMENT Release Date"],
                &["Tongyi Qianwen LICENSE AGREEMENT", "Tongyi Qianwen Release Date"],
            ],
            KnownLicense::QwenResearch => &[
                &["Qwen RESEARCH LICENSE AGREEMENT Release Date"],
                &["Tongyi Qianwen RESEARCH LICENSE AGREEMENT", "Tongyi Qianwen Release Date"],
            ],
            KnownLicense::DeepSeek => &[&["DEEPSEEK LICENSE AGREEMENT", "You and DeepSeek agree as follows"]],
        }
    }

    /// How other texts name the license. A text that names a model license besides the one it
    /// was identified as carries two sets of terms, and is not summarised as either. MIT and
    /// Apache-2.0 have none, since mentioning them adds no model terms.
    fn titles(self) -> &'static [&'static str] {
        match self {
            KnownLicense::Mit | KnownLicense::Apache2 => &[],
            KnownLicense::Llama3 => &["Llama 3 Community License"],
            KnownLicense::Llama3_1 => &["Llama 3.1 Community License"],
            KnownLicense::Llama3_2 => &["Llama 3.2 Community License"],
            KnownLicense::Llama3_3 => &["Llama 3.3 Community License"],
            KnownLicense::Gemma => &["Gemma Terms of Use"],
            KnownLicense::Qwen => &["Qwen License Agreement", "Tongyi Qianwen License Agreement"],
            KnownLicense::QwenResearch => {
                &["Qwen Research License Agreement", "Tongyi Qianwen Research License Agreement"]
            }
            KnownLicense::DeepSeek => &["DeepSeek License Agreement"],
        }
    }

    fn is_permissive(self) -> bool {
        matches!(self, KnownLicense::Mit | KnownLicense::Apache2)
    }

    pub fn summary(self) -> LicenseSummary {
        let (commercial_use, obligations, restrictions, source_url): (_, &[&str], &[&str], _) = match self {
            KnownLicense::Mit => (CommercialUse::Allowed, MIT_OBLIGATIONS, &[], "https://opensource.org/license/mit"),
            KnownLicense::Apache2 => (
                CommercialUse::Allowed,
                APACHE_OBLIGATIONS,
                APACHE_RESTRICTIONS,
                "https://www.apache.org/licenses/LICENSE-2.0",
            ),
            KnownLicense::Llama3 => (
                CommercialUse::Conditional(
                    "Allowed unless your products or services had more than 700 million monthly active users \
                     on the Meta Llama 3 release date, in which case you need a license from Meta.",
                ),
                LLAMA3_OBLIGATIONS,
                LLAMA3_RESTRICTIONS,
                "https://www.llama.com/llama3/license/",
            ),
            KnownLicense::Llama3_1 => (
                CommercialUse::Conditional(
                    "Allowed unless your products or services had more than 700 million monthly active users \
                     on the Llama 3.1 release date, in which case you need a license from Meta.",
                ),
                LLAMA3_1_OBLIGATIONS,
                LLAMA3_1_RESTRICTIONS,
                "https://www.llama.com/llama3_1/license/",
            ),
            KnownLicense::Llama3_2 => (
                CommercialUse::Conditional(
                    "Allowed unless your products or services had more than 700 million monthly active users \
                     on the Llama 3.2 release date, in which case you need a license from Meta.",
                ),
                LLAMA3_2_OBLIGATIONS,
                LLAMA3_2_RESTRICTIONS,
                "https://www.llama.com/llama3_2/license/",
            ),
            KnownLicense::Llama3_3 => (
                CommercialUse::Conditional(
                    "Allowed unless your products or services had more than 700 million monthly active users \
                     on the Llama 3.3 release date, in which case you need a license from Meta.",
                ),
                LLAMA3_3_OBLIGATIONS,
                LLAMA3_3_RESTRICTIONS,
                "https://www.llama.com/llama3_3/license/",
            ),
            KnownLicense::Gemma => {
                (CommercialUse::Allowed, GEMMA_OBLIGATIONS, GEMMA_RESTRICTIONS, "https://ai.google.dev/gemma/terms")
            }
            KnownLicense::Qwen => (
                CommercialUse::Conditional(
                    "Allowed unless the product or service using the model has more than 100 million monthly \
                     active users, in which case you must request a license from Alibaba Cloud.",
                ),
                QWEN_OBLIGATIONS,
                QWEN_RESTRICTIONS,
                "https://huggingface.co/Qwen/Qwen2.5-72B-Instruct/blob/main/LICENSE",
            ),
            KnownLicense::QwenResearch => (
                CommercialUse::NotAllowed,
                QWEN_RESEARCH_OBLIGATIONS,
                QWEN_RESEARCH_RESTRICTIONS,
                "https://huggingface.co/Qwen/Qwen2.5-3B-Instruct/blob/main/LICENSE",
            ),
            KnownLicense::DeepSeek => (
                CommercialUse::Allowed,
                DEEPSEEK_OBLIGATIONS,
                DEEPSEEK_RESTRICTIONS,
                "https://github.com/deepseek-ai/DeepSeek-Coder/blob/main/LICENSE-MODEL",
            ),
        };
        LicenseSummary { name: self.name(), commercial_use, obligations, restrictions, source_url }
    }
}

const MIT_OBLIGATIONS: &[&str] =
    &["Keep the copyright notice and the MIT permission notice in every copy or substantial portion of the model \
       you pass on."];

const APACHE_OBLIGATIONS: &[&str] = &[
    "Give everyone you pass the model or a derivative to a copy of the Apache License 2.0.",
    "Mark files you modify with a prominent notice that you changed them.",
    "Keep the copyright, patent, trademark and attribution notices of the original in what you distribute.",
    "If the model comes with a NOTICE file, pass its attribution notices on with your distribution.",
];
const APACHE_RESTRICTIONS: &[&str] = &[
    "The license grants no use of the licensor's trademarks beyond describing where the work came from.",
    "Your patent license ends if you sue anyone claiming that the work infringes a patent.",
];

// The Llama 3.x agreements share most of their terms; what differs is the version named in
// each notice, attribution and policy, and (in Llama 3 only) the ban on improving other models.
const LLAMA_COPY: &str =
    "When you distribute the model, a derivative, or a product or service using either, include a \
     copy of the agreement.";
const LLAMA_BUILT_WITH: &str = "When you distribute the model, a derivative, or a product or service using either, \
                                display \"Built with Llama\" prominently on a related website, user interface, blog \
                                post, about page or product documentation.";
const LLAMA_NAMING: &str =
    "If you use the model or its output to create, train, fine-tune or otherwise improve an AI model that you \
     distribute, the new model's name must begin with \"Llama\".";
const LLAMA_LAWSUIT: &str =
    "Bringing an intellectual-property claim over the model against Meta or anyone else ends your license.";

const LLAMA3_OBLIGATIONS: &[&str] = &[
    LLAMA_COPY,
    "When you distribute the model, a derivative, or a product or service using either, display \"Built with \
     Meta Llama 3\" prominently on a related website, user interface, blog post, about page or product \
     documentation.",
    "If you use the model or its output to create, train, fine-tune or otherwise improve an AI model that you \
     distribute, the new model's name must begin with \"Llama 3\".",
    "Keep the notice \"Meta Llama 3 is licensed under the Meta Llama 3 Community License, Copyright © Meta \
     Platforms, Inc. All Rights Reserved.\" in a \"Notice\" text file with every copy you distribute.",
];
const LLAMA3_RESTRICTIONS: &[&str] = &[
    "All use must follow applicable law and the Meta Llama 3 Acceptable Use Policy \
     (https://www.llama.com/llama3/use-policy/), which forbids, among others, illegal, harmful and deceptive uses.",
    "Do not use the model or its output to improve any other large language model, except Meta Llama 3 and its \
     derivatives.",
    "You get no right to Meta's trademarks except using \"Llama 3\" as the attribution requires.",
    LLAMA_LAWSUIT,
];

const LLAMA3_1_OBLIGATIONS: &[&str] = &[
    LLAMA_COPY,
    LLAMA_BUILT_WITH,
    LLAMA_NAMING,
    "Keep the notice \"Llama 3.1 is licensed under the Llama 3.1 Community License, Copyright © Meta Platforms, \
     Inc. All Rights Reserved.\" in a \"Notice\" text file with every copy you distribute.",
];
const LLAMA3_1_RESTRICTIONS: &[&str] = &[
    "All use must follow applicable law and the Llama 3.1 Acceptable Use Policy \
     (https://www.llama.com/llama3_1/use-policy/), which forbids, among others, illegal, harmful and deceptive uses.",
    "You get no right to Meta's trademarks except using \"Llama\" as the \"Built with Llama\" attribution requires.",
    LLAMA_LAWSUIT,
];

const LLAMA3_2_OBLIGATIONS: &[&str] = &[
    LLAMA_COPY,
    LLAMA_BUILT_WITH,
    LLAMA_NAMING,
    "Keep the notice \"Llama 3.2 is licensed under the Llama 3.2 Community License, Copyright © Meta Platforms, \
     Inc. All Rights Reserved.\" in a \"Notice\" text file with every copy you distribute.",
];
const LLAMA3_2_RESTRICTIONS: &[&str] = &[
    "All use must follow applicable law and the Llama 3.2 Acceptable Use Policy \
     (https://www.llama.com/llama3_2/use-policy/), which forbids, among others, illegal, harmful and deceptive uses.",
    "The policy withholds the license to the multimodal Llama 3.2 models from individuals living in, and companies \
     based in, the European Union, though not from end users of products built on them.",
    "You get no right to Meta's trademarks except using \"Llama\" as the \"Built with Llama\" attribution requires.",
    LLAMA_LAWSUIT,
];

const LLAMA3_3_OBLIGATIONS: &[&str] = &[
    LLAMA_COPY,
    LLAMA_BUILT_WITH,
    LLAMA_NAMING,
    "Keep the notice \"Llama 3.3 is licensed under the Llama 3.3 Community License, Copyright © Meta Platforms, \
     Inc. All Rights Reserved.\" in a \"Notice\" text file with every copy you distribute.",
];
const LLAMA3_3_RESTRICTIONS: &[&str] = &[
    "All use must follow applicable law and the Llama 3.3 Acceptable Use Policy \
     (https://www.llama.com/llama3_3/use-policy/), which forbids, among others, illegal, harmful and deceptive uses.",
    "You get no right to Meta's trademarks except using \"Llama\" as the \"Built with Llama\" attribution requires.",
    LLAMA_LAWSUIT,
];

const GEMMA_OBLIGATIONS: &[&str] = &[
    "Put the use restrictions of section 3.2 (the Prohibited Use Policy among them) as an enforceable provision \
     into any agreement under which you distribute Gemma or a Model Derivative, and tell recipients they apply.",
    "Give everyone you pass Gemma or a Model Derivative to a copy of the Gemma Terms of Use.",
    "Mark files you modify with a prominent notice that you changed them.",
    "Ship a \"Notice\" text file with every copy you distribute (hosted services aside) stating \"Gemma is provided \
     under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\".",
];
const GEMMA_RESTRICTIONS: &[&str] = &[
    "Do not use Gemma or a Model Derivative for anything the Gemma Prohibited Use Policy \
     (https://ai.google.dev/gemma/prohibited_use_policy) forbids, or against applicable law.",
    "Google may restrict, remotely or otherwise, any use of Gemma that it reasonably believes breaks these terms.",
    "Models trained on Gemma's weights or output to perform like Gemma, for example by distillation, count as Model \
     Derivatives and carry the same terms.",
];

// The 2023 Tongyi Qianwen texts and the 2024 Qwen texts differ in two clauses, said per point.
const QWEN_COPY: &str = "Give everyone you pass the model or a derivative to a copy of the agreement.";
const QWEN_MODIFIED: &str = "Mark files you modify with a prominent notice that you changed them.";
const QWEN_BUILT_WITH: &str = "Under the 2024 Qwen version, if you use the model or its output to create, train, \
                               fine-tune or improve an AI model that you distribute or make available, display \
                               \"Built with Qwen\" or \"Improved using Qwen\" prominently in its documentation.";
const QWEN_EXPORT: &str = "Comply with export controls and the other laws that apply to your use of the model.";
const QWEN_NO_IMPROVING_OTHERS: &str = "Under the 2023 Tongyi Qianwen version, do not use the model or its output to \
                                        improve any other large language model.";
const QWEN_TRADEMARKS: &str =
    "You get no right to Alibaba Cloud's trademarks beyond what the notice and describing the model require.";
const QWEN_LAWSUIT: &str = "Suing anyone with a claim that the model or its output infringes your intellectual \
                            property ends your license.";

const QWEN_OBLIGATIONS: &[&str] = &[
    QWEN_COPY,
    QWEN_MODIFIED,
    "Keep the attribution notice the agreement quotes (\"Qwen is licensed under the Qwen LICENSE AGREEMENT, \
     Copyright (c) Alibaba Cloud. All Rights Reserved.\" or its Tongyi Qianwen equivalent) in a \"Notice\" text \
     file with every copy you distribute.",
    QWEN_BUILT_WITH,
];
const QWEN_RESTRICTIONS: &[&str] = &[QWEN_EXPORT, QWEN_NO_IMPROVING_OTHERS, QWEN_TRADEMARKS, QWEN_LAWSUIT];

const QWEN_RESEARCH_OBLIGATIONS: &[&str] = &[
    QWEN_COPY,
    QWEN_MODIFIED,
    "Keep the attribution notice the agreement quotes (\"Qwen is licensed under the Qwen RESEARCH LICENSE \
     AGREEMENT, Copyright (c) Alibaba Cloud. All Rights Reserved.\" or its Tongyi Qianwen equivalent) in a \
     \"Notice\" text file with every copy you distribute.",
    QWEN_BUILT_WITH,
];
const QWEN_RESEARCH_RESTRICTIONS: &[&str] = &[
    "Use, copy, modify and distribute the model for non-commercial purposes only, which the agreement defines as \
     research or evaluation.",
    "Any commercial use needs a separate license from Alibaba Cloud.",
    QWEN_EXPORT,
    QWEN_NO_IMPROVING_OTHERS,
    QWEN_TRADEMARKS,
    QWEN_LAWSUIT,
];

const DEEPSEEK_OBLIGATIONS: &[&str] = &[
    "Put the use-based restrictions of Attachment A as an enforceable provision into any agreement under which \
     you distribute the model or a derivative, hosting it as a service included, and tell recipients they apply.",
    "Require everyone who uses the model or a derivative through you to comply with those restrictions.",
    "Give every third party you pass the model or a derivative to a copy of the license.",
    "Mark files you modify with a prominent notice that you changed them.",
    "Keep the copyright, patent, trademark and attribution notices that concern the model.",
];
const DEEPSEEK_RESTRICTIONS: &[&str] = &[
    "Do not use the model or a derivative for anything Attachment A forbids, which includes military use, harming \
     minors, spreading false information to harm others, discrimination, and fully automated decisions that \
     adversely affect a person's legal rights.",
    "Models made by distilling or otherwise transferring the model's weights or output count as derivatives and \
     carry the same restrictions.",
    "DeepSeek may restrict, remotely or otherwise, use of the model that breaks the license.",
    "The license grants no right to DeepSeek's trademarks, trade names or logos.",
];

/// Phrases a permissive license's text does not contain, and which mean the text also carries
/// or points to model terms (a policy, a non-commercial clause, a community license) that a
/// summary of the permissive license alone would hide.
const OTHER_TERMS: &[&str] = &[
    "community license",
    "acceptable use policy",
    "prohibited use policy",
    "terms of use",
    "research license",
    "non-commercial",
    "noncommercial",
    "openrail",
    "responsible ai license",
];

/// Recognises a license from its text, or from GGUF's `general.license` id when there is no
/// text. See the module documentation for why the text alone decides when present.
pub fn identify(text: &str, gguf_license_id: Option<&str>) -> Identified {
    let known = if text.trim().is_empty() {
        gguf_license_id.and_then(KnownLicense::from_id)
    } else {
        // A Modelfile's LICENSE is sometimes nothing but an id: `LICENSE "Apache-2.0"`.
        KnownLicense::from_id(text).or_else(|| identify_text(&words(text)))
    };
    known.map_or(Identified::Unknown, Identified::Known)
}

fn identify_text(text: &str) -> Option<KnownLicense> {
    let has = |phrase: &str| text.contains(&words(phrase));
    let mut matching =
        KnownLicense::ALL.into_iter().filter(|l| l.signatures().iter().any(|sig| sig.iter().all(|p| has(p))));
    let (Some(license), None) = (matching.next(), matching.next()) else {
        return None;
    };
    let names_another =
        KnownLicense::ALL.into_iter().filter(|&l| l != license).flat_map(|l| l.titles()).any(|t| has(t));
    let other_terms = license.is_permissive() && OTHER_TERMS.iter().any(|t| has(t));
    (!names_another && !other_terms).then_some(license)
}

/// The text as lower-case words joined by single spaces, with a space at each end, so that a
/// phrase matches whole words only ("mit" is not in "permit") and case, line breaks and
/// punctuation (straight or curly quotes, "3.1" against "3 1") never matter.
fn words(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            out.push(c);
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

const WIDTH: usize = 80;
const HEADING: &str = "License summary (not legal advice)";

/// The summary block `kiln show NAME --license` prints after the license text: plain text,
/// wrapped to 80 columns. `text` is the license text the block follows; when it is empty
/// (identified from the GGUF id alone, or not at all) the block says so.
pub fn render(identified: Identified, text: &str) -> String {
    let no_text = text.trim().is_empty();
    let mut out = format!("{HEADING}\n{}\n", "=".repeat(HEADING.len()));
    let license = match identified {
        Identified::Known(license) => license,
        Identified::Unknown if no_text => {
            wrap(
                &mut out,
                "Kiln does not recognise this license, and the model carries no license text; find out the \
                 model's license before using the model.",
                "",
                "",
            );
            return out;
        }
        Identified::Unknown => {
            wrap(
                &mut out,
                "Kiln does not recognise this license; read the full text above before using the model.",
                "",
                "",
            );
            return out;
        }
    };
    let summary = license.summary();
    wrap(&mut out, &format!("{} ({})", summary.name, license.spdx_or_id()), "", "");
    if no_text {
        wrap(
            &mut out,
            "Identified from the model's license id only: the model carries no license text, so check the terms \
             at the address below.",
            "",
            "",
        );
    }
    out.push('\n');
    let commercial = match summary.commercial_use {
        CommercialUse::Allowed => "Allowed.",
        CommercialUse::Conditional(condition) => condition,
        CommercialUse::NotAllowed => "Not allowed.",
    };
    wrap(&mut out, &format!("Commercial use: {commercial}"), "", "  ");
    for (heading, points) in [("Obligations:", summary.obligations), ("Restrictions:", summary.restrictions)] {
        out.push('\n');
        if points.is_empty() {
            wrap(&mut out, &format!("{heading} none stated."), "", "");
            continue;
        }
        out.push_str(heading);
        out.push('\n');
        for point in points {
            wrap(&mut out, point, "  - ", "    ");
        }
    }
    out.push('\n');
    wrap(&mut out, &format!("Full terms: {}", summary.source_url), "", "  ");
    wrap(&mut out, "This summary is not legal advice; the license text is what binds you.", "", "");
    out
}

/// Appends `text` wrapped at word boundaries to `WIDTH` columns, the first line after `first`
/// and the rest after `rest`. A word longer than a line (a URL) gets a line of its own.
fn wrap(out: &mut String, text: &str, first: &str, rest: &str) {
    let mut line = String::from(first);
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = String::from(rest);
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    // Openings of each license, cut short: enough for the title and the lines that identify it.
    const MIT: &str = "MIT License\n\nCopyright (c) 2024 The Authors\n\nPermission is hereby granted, free of charge, \
        to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to \
        deal\nin the Software without restriction, including without limitation the rights\nto use, copy, modify, \
        merge, publish, distribute, sublicense, and/or sell\ncopies of the Software, and to permit persons to whom \
        the Software is\nfurnished to do so, subject to the following conditions:\n\nThe above copyright notice and \
        this permission notice shall be included in all\ncopies or substantial portions of the Software.\n\nTHE \
        SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR\nIMPLIED.\n";
    const APACHE: &str = include_str!("../testdata/licenses/apache-2.0.txt");
    const APACHE_NOTICE: &str = "Copyright 2024 The Authors\n\nLicensed under the Apache License, Version 2.0 (the \
        \"License\");\nyou may not use this file except in compliance with the License.\nYou may obtain a copy of \
        the License at\n\n    http://www.apache.org/licenses/LICENSE-2.0\n";
    const LLAMA3: &str = "META LLAMA 3 COMMUNITY LICENSE AGREEMENT\nMeta Llama 3 Version Release Date: April 18, \
        2024\n\n\"Agreement\" means the terms and conditions for use, reproduction, distribution and modification \
        of the Llama Materials set forth herein.\n";
    const LLAMA3_1: &str = "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT\nLlama 3.1 Version Release Date: July 23, \
        2024\n\n“Agreement” means the terms and conditions for use, reproduction, distribution and modification of \
        the Llama Materials set forth herein.\n";
    const LLAMA3_2: &str = "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, \
        2024\n\n“Agreement” means the terms and conditions for use, reproduction, distribution and modification of \
        the Llama Materials set forth herein.\n";
    const LLAMA3_3: &str = "LLAMA 3.3 COMMUNITY LICENSE AGREEMENT\nLlama 3.3 Version Release Date: December 6, \
        2024\n\n“Agreement” means the terms and conditions for use, reproduction, distribution and modification of \
        the Llama Materials set forth herein.\n";
    const GEMMA: &str = "Gemma Terms of Use\n\nLast modified: February 21, 2024\n\nBy using, reproducing, \
        modifying, distributing, performing or displaying any portion or element of Gemma, Model Derivatives \
        including via any Hosted Service, (each as defined below) (collectively, the \"Gemma Services\") or \
        otherwise accepting the terms of this Agreement, you agree to be bound by this Agreement.\n";
    const QWEN: &str = "Qwen LICENSE AGREEMENT\n\nQwen LICENSE AGREEMENT Release Date: September 19, 2024\n\nBy \
        clicking to agree or by using or distributing any portion or element of the Qwen Materials, you will be \
        deemed to have recognized and accepted the content of this Agreement, which is effective immediately.\n";
    const TONGYI_QIANWEN: &str = "Tongyi Qianwen LICENSE AGREEMENT\n\nTongyi Qianwen Release Date: August 3, \
        2023\n\nBy clicking to agree or by using or distributing any portion or element of the Tongyi Qianwen \
        Materials, you will be deemed to have recognized and accepted the content of this Agreement.\n";
    const QWEN_RESEARCH: &str = "Qwen RESEARCH LICENSE AGREEMENT\n\nQwen RESEARCH LICENSE AGREEMENT Release Date: \
        September 19, 2024\n\nBy clicking to agree or by using or distributing any portion or element of the Qwen \
        Materials, you will be deemed to have recognized and accepted the content of this Agreement.\n";
    const TONGYI_QIANWEN_RESEARCH: &str = "Tongyi Qianwen RESEARCH LICENSE AGREEMENT\n\nTongyi Qianwen Release \
        Date: November 30, 2023\n\nBy clicking to agree or by using or distributing any portion or element of the \
        Tongyi Qianwen Materials, you will be deemed to have recognized and accepted the content of this \
        Agreement.\n";
    const DEEPSEEK: &str = "DEEPSEEK LICENSE AGREEMENT\n\nVersion 1.0, 23 October 2023\n\nCopyright (c) 2023 \
        DeepSeek\n\nSection I: PREAMBLE\n\nLarge generative models are being widely adopted and used. [...]\n\nNOW \
        THEREFORE, You and DeepSeek agree as follows:\n\n1. Definitions\n";

    fn from_text(text: &str) -> Identified {
        identify(text, None)
    }

    #[test]
    fn each_license_is_identified_from_its_text() {
        let cases = [
            (MIT, KnownLicense::Mit),
            (APACHE, KnownLicense::Apache2),
            (APACHE_NOTICE, KnownLicense::Apache2),
            (LLAMA3, KnownLicense::Llama3),
            (LLAMA3_1, KnownLicense::Llama3_1),
            (LLAMA3_2, KnownLicense::Llama3_2),
            (LLAMA3_3, KnownLicense::Llama3_3),
            (GEMMA, KnownLicense::Gemma),
            (QWEN, KnownLicense::Qwen),
            (TONGYI_QIANWEN, KnownLicense::Qwen),
            (QWEN_RESEARCH, KnownLicense::QwenResearch),
            (TONGYI_QIANWEN_RESEARCH, KnownLicense::QwenResearch),
            (DEEPSEEK, KnownLicense::DeepSeek),
        ];
        for (text, license) in cases {
            assert_eq!(from_text(text), Identified::Known(license), "{}", text.lines().next().unwrap());
        }
    }

    #[test]
    fn case_line_breaks_and_punctuation_do_not_matter() {
        let reflowed = LLAMA3_2.to_lowercase().split_whitespace().collect::<Vec<_>>().join("\n   ");
        assert_eq!(from_text(&reflowed), Identified::Known(KnownLicense::Llama3_2));
        let curly = MIT.replace('"', "“").to_uppercase();
        assert_eq!(from_text(&curly), Identified::Known(KnownLicense::Mit));
    }

    #[test]
    fn mentioning_mit_inside_apache_does_not_flip_it() {
        let text = format!("{APACHE}\nPortions of the tokenizer code were first published under the MIT License.\n");
        assert_eq!(from_text(&text), Identified::Known(KnownLicense::Apache2));
    }

    #[test]
    fn mentions_of_a_model_license_are_not_the_license() {
        for text in [
            "This model is a fine-tune of Llama 3.2 by Meta. Use it responsibly.",
            "The weights are licensed under the Llama 3.2 Community License Agreement.",
            "Gemma 2 is released under the Gemma Terms of Use.",
            "See the DeepSeek License Agreement (Attachment A) for use-based restrictions.",
            "Licensed under the Qwen LICENSE AGREEMENT.",
        ] {
            assert_eq!(from_text(text), Identified::Unknown, "{text}");
        }
    }

    #[test]
    fn licenses_outside_the_known_set_are_unknown() {
        let llama2 = "LLAMA 2 COMMUNITY LICENSE AGREEMENT\nLlama 2 Version Release Date: July 18, 2023\n";
        let apache1 = "Apache License\nVersion 1.1\n\nCopyright (c) 2000 The Apache Software Foundation.\n";
        let boost = "Permission is hereby granted, free of charge, to any person or organization obtaining a copy";
        for text in [llama2, apache1, boost, "All rights reserved."] {
            assert_eq!(from_text(text), Identified::Unknown, "{text}");
        }
    }

    #[test]
    fn a_permissive_text_carrying_model_terms_is_unknown() {
        let code_mit_weights_llama =
            format!("{MIT}\nThe model weights are subject to the Llama 3.2 Community License Agreement.\n");
        let mit_non_commercial = format!("{MIT}\nThe weights may be used for non-commercial purposes only.\n");
        let apache_with_policy = format!("{APACHE}\nUse of the model must follow our Acceptable Use Policy.\n");
        for text in [code_mit_weights_llama, mit_non_commercial, apache_with_policy] {
            assert_eq!(from_text(&text), Identified::Unknown);
        }
    }

    #[test]
    fn two_licenses_in_one_text_are_unknown() {
        assert_eq!(from_text(&format!("{MIT}\n\n{APACHE}")), Identified::Unknown);
        assert_eq!(from_text(&format!("{DEEPSEEK}\n\n{MIT}")), Identified::Unknown);
        assert_eq!(from_text(&format!("{LLAMA3_1}\n\n{LLAMA3_2}")), Identified::Unknown);
    }

    #[test]
    fn gguf_ids_map_when_there_is_no_text() {
        let cases = [
            ("mit", KnownLicense::Mit),
            ("apache-2.0", KnownLicense::Apache2),
            ("Apache-2.0", KnownLicense::Apache2),
            ("llama3", KnownLicense::Llama3),
            ("llama3.1", KnownLicense::Llama3_1),
            ("llama3.2", KnownLicense::Llama3_2),
            ("llama3.3", KnownLicense::Llama3_3),
            ("gemma", KnownLicense::Gemma),
            ("qwen", KnownLicense::Qwen),
            ("tongyi-qianwen", KnownLicense::Qwen),
            ("qwen-research", KnownLicense::QwenResearch),
            ("deepseek", KnownLicense::DeepSeek),
        ];
        for (id, license) in cases {
            assert_eq!(identify("", Some(id)), Identified::Known(license), "{id}");
            assert_eq!(identify(" \n", Some(id)), Identified::Known(license), "{id}");
        }
        for id in ["other", "llama2", "cc-by-nc-4.0", ""] {
            assert_eq!(identify("", Some(id)), Identified::Unknown, "{id}");
        }
        assert_eq!(identify("", None), Identified::Unknown);
    }

    #[test]
    fn the_text_decides_over_the_id() {
        assert_eq!(identify(APACHE, Some("mit")), Identified::Known(KnownLicense::Apache2));
        assert_eq!(identify("Custom terms: ask the authors.", Some("mit")), Identified::Unknown);
        assert_eq!(identify(LLAMA3_1, Some("other")), Identified::Known(KnownLicense::Llama3_1));
    }

    #[test]
    fn a_text_that_is_only_an_id_is_read_as_one() {
        assert_eq!(from_text("Apache-2.0"), Identified::Known(KnownLicense::Apache2));
        assert_eq!(from_text(" MIT\n"), Identified::Known(KnownLicense::Mit));
        assert_eq!(from_text("other"), Identified::Unknown);
    }

    #[test]
    fn every_license_has_a_summary_and_its_own_id() {
        for license in KnownLicense::ALL {
            let s = license.summary();
            assert_eq!(s.name, license.name());
            assert!(!s.obligations.is_empty() || !s.restrictions.is_empty(), "{license:?}");
            assert!(s.source_url.starts_with("https://"), "{license:?}");
            assert_eq!(KnownLicense::from_id(license.spdx_or_id()), Some(license));
            let conditional = match s.commercial_use {
                CommercialUse::Conditional(c) => vec![c],
                _ => vec![],
            };
            for point in s.obligations.iter().chain(s.restrictions).chain(&conditional) {
                assert!(point.ends_with('.') && !point.contains("  "), "{license:?}: {point}");
            }
        }
    }

    #[test]
    fn summaries_carry_the_terms_the_licenses_are_known_for() {
        let text = |l: KnownLicense| {
            let s = l.summary();
            let condition = match s.commercial_use {
                CommercialUse::Conditional(c) => c,
                _ => "",
            };
            format!("{condition} {} {}", s.obligations.join(" "), s.restrictions.join(" "))
        };
        for llama in [KnownLicense::Llama3_1, KnownLicense::Llama3_2, KnownLicense::Llama3_3] {
            let t = text(llama);
            for needle in [
                "Built with Llama",
                "begin with \"Llama\"",
                "700 million",
                "Acceptable Use Policy",
                "copy of the agreement",
            ] {
                assert!(t.contains(needle), "{llama:?} lacks {needle}");
            }
        }
        assert!(text(KnownLicense::Llama3).contains("Built with Meta Llama 3"));
        assert!(text(KnownLicense::Llama3_2).contains("European Union"));
        for needle in ["Prohibited Use Policy", "remotely", "Notice", "enforceable provision"] {
            assert!(text(KnownLicense::Gemma).contains(needle), "Gemma lacks {needle}");
        }
        for needle in ["100 million", "Built with Qwen", "Improved using Qwen"] {
            assert!(text(KnownLicense::Qwen).contains(needle), "Qwen lacks {needle}");
        }
        assert_eq!(KnownLicense::QwenResearch.summary().commercial_use, CommercialUse::NotAllowed);
        for needle in ["Attachment A", "enforceable provision", "trademarks"] {
            assert!(text(KnownLicense::DeepSeek).contains(needle), "DeepSeek lacks {needle}");
        }
    }

    /// The rendered block with its line breaks and indentation folded away, for phrase checks.
    fn flat(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn unknown_renders_the_warning_and_no_summary() {
        let out = render(Identified::Unknown, "Custom terms.");
        assert!(out.starts_with("License summary (not legal advice)\n"));
        assert!(flat(&out)
            .contains("Kiln does not recognise this license; read the full text above before using the model."));
        for absent in ["Commercial use", "Obligations", "Restrictions", "Full terms"] {
            assert!(!out.contains(absent), "{absent}");
        }
        let out = flat(&render(Identified::Unknown, ""));
        assert!(out.contains("Kiln does not recognise this license") && out.contains("no license text"));
    }

    #[test]
    fn known_renders_every_point_within_80_columns() {
        for license in KnownLicense::ALL {
            let out = render(Identified::Known(license), "the license text");
            assert!(out.starts_with("License summary (not legal advice)\n"));
            let s = license.summary();
            let flat = flat(&out);
            for point in s.obligations.iter().chain(s.restrictions).chain([&s.name, &s.source_url]) {
                assert!(flat.contains(&self::flat(point)), "{license:?}: {point}");
            }
            assert!(!flat.contains("recognise"));
            for line in out.lines() {
                assert!(line.chars().count() <= WIDTH || !line.trim().contains(' '), "{line}");
            }
        }
    }

    #[test]
    fn render_says_when_only_the_id_was_known() {
        let out = flat(&render(identify("", Some("gemma")), ""));
        assert!(out.contains("Gemma Terms of Use (gemma)"));
        assert!(out.contains("license id only"));
        assert!(!flat(&render(identify(GEMMA, None), GEMMA)).contains("license id only"));
    }

    #[test]
    fn mit_renders_no_restrictions_as_none_stated() {
        let out = render(Identified::Known(KnownLicense::Mit), MIT);
        assert!(out.contains("Commercial use: Allowed.\n"));
        assert!(out.contains("Restrictions: none stated.\n"));
    }
}
