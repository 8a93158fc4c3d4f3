//! The few names and modes of blankslate's own layout that the declaration language
//! must know to judge a declaration: where the state lives, what blankslate keeps for
//! itself in `/etc`, and the mode a directory needs no entry for. The state crate
//! (`blankslate-state`) uses these same constants, so both agree by construction.

/// Where the state lives unless told otherwise, as seen from inside the root.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/blankslate";
/// The activation record's directory inside `/etc`.
pub const ETC_STATE_DIR: &str = ".blankslate";
/// The link inside `/etc` to the generation's tree.
pub const ETC_STATIC: &str = "static";
/// The mode of a directory that needs no entry of its own.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// Whether `path` (relative to `/etc`) is, or lies inside, a name blankslate keeps for
/// itself in `/etc`: that name, and what blankslate keeps there.
pub fn reserved(path: &str) -> Option<(&'static str, &'static str)> {
    let top = path.split('/').next()?;
    [(ETC_STATIC, "links the generation's tree"), (ETC_STATE_DIR, "keeps the activation's records")]
        .into_iter()
        .find(|(name, _)| *name == top)
}
