//! Packages whose `/etc` files are lost or stray.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A Debian root: dpkg's database persisted, one package's conffile lost (as a reboot
/// loses what is not kept), another's stray in /etc, a removed package's
/// configuration left, a package file where the declaration ignores it.
#[test]
fn packages_whose_etc_files_are_lost_or_stray_are_named() {
    if !root_or_skip("needs root") {
        return;
    }
    let text = "version = 1\n[persist.\"/persist\"]\ndirectories = [\"/var/lib/dpkg\"]\n\n\
                [etc.\"hosts\"]\ntext = \"127.0.0.1 localhost\\n\"\n\n[audit]\nignore = [\"/etc/*.local\"]\n";
    let (human, json) = in_namespace(move || {
        let scratch = activated_with(text, true);
        scratch.write("persist/var/lib/blankslate/profiles/current", b"");
        let status = "\
Package: anacron
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/anacrontab 3c8a0d7c1b1e2f9e1f6a9d2e8c7b6a51
 /etc/cron.daily/0anacron 9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e

Package: atd
Status: install ok installed
Architecture: amd64
Conffiles:
 /etc/at.deny 1b2c3d4e5f60718293a4b5c6d7e8f901

Package: oldpkg
Status: deinstall ok config-files
Architecture: all
Conffiles:
 /etc/oldpkg.conf 0123456789abcdef0123456789abcdef

Package: resolvconf
Status: install ok installed
Architecture: all
Conffiles:
 /etc/resolvconf.local 0123456789abcdef0123456789abcdef
";
        scratch.write("var/lib/dpkg/status", status.as_bytes());
        let lists = [
            ("anacron", "/.\n/etc\n/etc/anacrontab\n/etc/cron.daily\n/etc/cron.daily/0anacron\n/usr/sbin/anacron\n"),
            ("atd", "/.\n/etc\n/etc/at.deny\n/usr/sbin/atd\n"),
            ("oldpkg", "/etc\n/etc/oldpkg.conf\n"),
            ("resolvconf", "/etc\n/etc/resolv.conf\n/etc/resolvconf.local\n"),
        ];
        for (package, list) in lists {
            scratch.write(format!("var/lib/dpkg/info/{package}.list"), list.as_bytes());
        }
        // A reboot kept the database (persisted) and lost /etc/anacrontab; the daily
        // job and atd's file are there, kept by nothing.
        scratch.write("etc/cron.daily/0anacron", b"#!/bin/sh\n");
        scratch.write("etc/at.deny", b"nobody\n");
        let report = scratch.audit();
        let text = summary(&report);
        let missing = find(&report, Class::PackageMissing, b"/etc/anacrontab");
        assert_eq!(missing.len(), 1, "{text}");
        assert_eq!(missing[0].packages, ["anacron"]);
        assert!(missing[0].reason.contains("--force-confmiss anacron`"), "{}", missing[0].reason);
        let at_deny = find(&report, Class::EtcStray, b"/etc/at.deny");
        assert_eq!(
            (at_deny[0].packages.as_slice(), at_deny[0].reason.as_str()),
            (&["atd".to_owned()][..], "from package atd")
        );
        let cron = find(&report, Class::EtcStray, b"/etc/cron.daily");
        assert_eq!(cron[0].reason, "holds files of package anacron", "{text}");
        // Not installed, or ignored: nothing expected.
        assert!(!text.contains("oldpkg") && !text.contains("resolv"), "{text}");
        assert_eq!(report.total(Class::PackageMissing).count, 1);
        assert_eq!(report.exit_code(), 2, "{text}");
        // Once it is back, the package is whole: its file is a stray to keep.
        scratch.write("etc/anacrontab", b"1 5 cron.daily run-parts /etc/cron.daily\n");
        let report = scratch.audit();
        assert_eq!(report.exit_code(), 1, "{}", summary(&report));
        assert_eq!(find(&report, Class::EtcStray, b"/etc/anacrontab")[0].reason, "from package anacron");
        std::fs::remove_file(scratch.path("etc/anacrontab")).unwrap();
        // An upgrade of the package that lists a declared file replaced it: drift,
        // with the package named (what `etc keep --packaged` keeps).
        scratch.write("var/lib/dpkg/info/netbase.list", b"/etc\n/etc/hosts\n");
        let status = format!("{status}\nPackage: netbase\nStatus: install ok installed\nArchitecture: all\n");
        scratch.write("var/lib/dpkg/status", status.as_bytes());
        let hosts = scratch.path("etc/hosts");
        let declared = std::fs::read_link(&hosts).unwrap();
        std::fs::remove_file(&hosts).unwrap();
        std::fs::write(&hosts, "127.0.0.1 localhost upgraded\n").unwrap();
        let report = scratch.audit();
        let drift = find(&report, Class::EtcDrift, b"/etc/hosts");
        assert_eq!(drift.len(), 1, "{}", summary(&report));
        assert_eq!(drift[0].packages, ["netbase"], "{}", summary(&report));
        std::fs::remove_file(scratch.path("var/lib/dpkg/info/netbase.list")).unwrap();
        scratch.write("var/lib/dpkg/status", status.split("\nPackage: netbase").next().unwrap().as_bytes());
        let report = scratch.audit();
        assert!(find(&report, Class::EtcDrift, b"/etc/hosts")[0].packages.is_empty());
        std::fs::remove_file(&hosts).unwrap();
        std::os::unix::fs::symlink(declared, &hosts).unwrap();
        let report = scratch.audit();
        let mut json = blankslate_audit::render::json(&report, "ROOT");
        json.as_object_mut().unwrap().remove("stats");
        json.as_object_mut().unwrap().remove("time");
        let json = serde_json::to_string_pretty(&json["findings"]).unwrap();
        (blankslate_audit::render::human(&report, "ROOT", false), json)
    });
    insta::assert_snapshot!("dpkg_human", human);
    insta::assert_snapshot!("dpkg_json", json);
}
