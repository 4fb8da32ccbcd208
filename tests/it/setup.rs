//! Setting snap up: `snap init` (where the workspace and the repository
//! go, and what it says about them), shell completions and man pages.

use std::fs;

use crate::util::*;

#[test]
fn bash_completions_name_the_subcommands() {
    let ws = Ws::bare();
    let script = ws.ok(&["completions", "bash"]);
    assert!(script.contains("_snap()"), "not a bash completion function");
    for sub in [
        "init",
        "commit",
        "restore",
        "import-zip",
        "completions",
        "man",
    ] {
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

#[test]
fn init_says_where_the_workspace_and_repository_are() {
    let ws = Ws::bare();
    let out = ws.ok(&["init"]);
    let root = ws.root.display().to_string();
    assert!(
        out.contains(&format!("repository {}", ws.repo().display())),
        "{out}"
    );
    assert!(out.contains(&format!("workspace: {root} ")), "{out}");
    assert!(
        !ws.path("snap.toml").exists(),
        "nothing but .snap/ is needed"
    );
    assert!(!out.contains("wrote"), "{out}");
}

#[test]
fn init_with_repo_writes_snap_toml_only_into_the_workspace_given() {
    let ws = Ws::bare();
    let parent = ws.tmp.path();
    let store = ws.outside("disk/store");
    fs::create_dir_all(ws.path("sub")).unwrap();
    let o = snap_in(parent)
        .args(["--repo", "disk/store", "init", "--workspace", "ws"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(store.join("config").is_file());
    assert!(
        !parent.join("snap.toml").exists(),
        "snap.toml written into the current directory"
    );
    let toml = ws.path("snap.toml");
    let text = fs::read_to_string(&toml).unwrap();
    assert!(text.contains(store.to_str().unwrap()), "{text}");
    for want in [
        format!("repository {}", store.display()),
        format!("workspace: {}", ws.root.display()),
        format!("wrote {}", toml.display()),
        format!("cd {}", ws.root.display()),
    ] {
        assert!(out.contains(&want), "output lacks '{want}':\n{out}");
    }
    // A commit below the workspace snapshots the workspace, not its parent.
    fs::write(parent.join("outside.txt"), b"not in the workspace").unwrap();
    ws.write("sub/a.txt", b"a");
    let o = snap_in(&ws.path("sub"))
        .args(["commit", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<String> = ws.show_files("latest").into_keys().collect();
    assert_eq!(files, ["snap.toml", "sub", "sub/a.txt"]);
    // The default workspace is the current directory, and that is said too.
    let other = ws.outside("other");
    fs::create_dir_all(&other).unwrap();
    let o = snap_in(&other)
        .args(["--repo", "../disk/store2", "init"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("wrote {}", other.join("snap.toml").display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("workspace: {}", other.display())),
        "{out}"
    );
}

#[test]
fn init_keeps_an_existing_snap_toml() {
    let ws = Ws::bare();
    ws.write(
        "snap.toml",
        b"# mine\ntrack = [\"logs\"]\n\n[retention]\nkeep_sessions = 3\n",
    );
    let store = ws.outside("store");
    let out = ws.ok(&["--repo", store.to_str().unwrap(), "init"]);
    assert!(out.contains("added `repo`"), "{out}");
    let text = fs::read_to_string(ws.path("snap.toml")).unwrap();
    assert!(text.ends_with("# mine\ntrack = [\"logs\"]\n\n[retention]\nkeep_sessions = 3\n"));
    ws.write("logs/a.log", b"a");
    ws.write("untracked.txt", b"u");
    ws.commit(&[]);
    let files: Vec<String> = ws.show_files("latest").into_keys().collect();
    assert_eq!(files, ["logs", "logs/a.log"]);

    // A snap.toml naming another repository is the user's: refused, nothing created.
    let other = ws.outside("other-store");
    let o = ws.fails(&["--repo", other.to_str().unwrap(), "init"], 1);
    let err = stderr(&o);
    assert!(err.contains("snap.toml") && err.contains("store"), "{err}");
    assert!(
        !other.exists(),
        "a refused init created {}",
        other.display()
    );
    // The workspace directory itself cannot be the repository.
    let o = ws.fails(&["--repo", ".", "init"], 1);
    assert!(
        stderr(&o).contains("workspace directory itself"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn init_in_the_home_directory_warns() {
    let ws = Ws::bare();
    let o = ws.cmd().env("HOME", &ws.root).arg("init").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("home directory"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--workspace"), "{}", stderr(&o));
    let o = snap_in(ws.tmp.path())
        .env("HOME", &ws.root)
        .args(["init", "--workspace", "project"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert!(ws.outside("project/.snap/config").is_file());
}
