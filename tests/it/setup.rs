//! Setting snap up: `snap init` (where the workspace and the repository
//! go, and what it says about them), shell completions and man pages.

use std::fs;

use crate::util::*;

#[test]
fn bash_completions_name_the_subcommands() {
    let ws = Ws::bare();
    let script = ws.ok(&["completions", "bash"]);
    assert!(script.contains("_snap()"), "not a bash completion function");
    for sub in ["init", "commit", "restore", "import-zip", "completions", "man"] {
        assert!(script.contains(sub), "bash completions lack '{sub}'");
    }
    assert!(script.contains("--session"), "commit options are completed");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let s = ws.ok(&["completions", shell]);
        assert!(s.contains("commit"), "{shell} completions lack 'commit'");
    }
    let o = ws.fails(&["completions", "tcsh"], 2);
    assert!(stderr(&o).contains("bash"), "{}", stderr(&o));
}

#[test]
fn man_prints_a_roff_page_naming_the_commands() {
    let ws = Ws::bare();
    let page = ws.ok(&["man"]);
    assert!(page.contains(".TH snap 1"), "no roff title line:\n{page}");
    assert!(page.contains(".SH SYNOPSIS"), "no SYNOPSIS section");
    for sub in ["snap\\-init(1)", "snap\\-commit(1)", "snap\\-restore(1)"] {
        assert!(page.contains(sub), "snap(1) does not name {sub}");
    }
    assert!(page.contains("Exit codes"), "exit codes are documented");
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let ws = Ws::bare();
    let dir = ws.outside("share/man/man1");
    let out = ws.ok(&["man", "--dir", dir.to_str().expect("utf-8 temp path")]);
    assert!(out.contains(dir.to_str().unwrap()), "{out}");
    for page in ["snap.1", "snap-commit.1", "snap-init.1", "snap-restore.1"] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH snap"), "{page} is not a man page");
    }
    let commit = fs::read_to_string(dir.join("snap-commit.1")).unwrap();
    assert!(commit.contains(".TH snap-commit 1"), "{commit}");
    assert!(commit.contains("\\-\\-session"), "{commit}");
    // Nothing else was created: the workspace has no repository.
    assert!(!ws.path(".snap").exists());
}
