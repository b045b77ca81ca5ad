//! `metadata=` terms. Placeholder: filled in by the metadata work
//! (git-annex's Types/MetaData.hs parseMetaDataMatcher).

use annex_branch::logs::metadata::MetaData;

/// A compiled `metadata=FIELD...VALUE` term.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaDataMatcher {
    source: String,
}

impl MetaDataMatcher {
    /// Parses the text after `metadata=`, with git-annex's error messages.
    pub fn parse(s: &str) -> Result<MetaDataMatcher, String> {
        Ok(MetaDataMatcher {
            source: s.to_owned(),
        })
    }

    /// Whether some current value of the field matches.
    pub fn matches(&self, _md: &MetaData) -> bool {
        false
    }
}
