use super::*;

/// A list in the shape of the public Windows Downdate template (resources/Pending.xml), with
/// a BOM, both spellings of the file attributes, registry primitives and a marker.
fn template() -> Vec<u8> {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        br#"<?xml version="1.0" encoding="utf-8"?>
<PendingTransaction Version="3.1" WcpVersion="10.0.22621.2567" Identifier="916ae75edb30da0146730000dc1be027">
  <Transactions>
    <Transaction id="1"/>
  </Transactions>
  <POQ postAction="reboot">
    <BeginTransaction id="1"/>
    <CreateDirectory path="\SystemRoot\WinSxS\Temp\x" fileAttribute="0x10"/>
    <CreateFile path="\SystemRoot\Temp\empty.txt" fileAttributes="0x80"/>
    <HardlinkFile source="\??\C:\Users\a\Desktop\ntoskrnl.exe" destination="\SystemRoot\System32\ntoskrnl.exe"/>
    <MoveFile source="\SystemRoot\WinSxS\Temp\PendingRenames\a.dll" destination="\SystemRoot\System32\a.dll"/>
    <SetKeyValue path="\Registry\Machine\SOFTWARE\x" name="v" type="0x4" encoding="base64" value="AQAAAA=="/>
    <DeleteFile path="\SystemRoot\System32\old &amp; gone.dll"/>
    <Checkpoint/>
  </POQ>
  <POQ>
    <DeleteFile path="\SystemRoot\not-at-boot.dll"/>
  </POQ>
</PendingTransaction>
"#,
    );
    bytes
}

#[test]
fn reads_the_template() {
    let list = read_action_list(&template()).unwrap();
    assert_eq!(list.version.as_deref(), Some("3.1"));
    assert_eq!(list.wcp_version.as_deref(), Some("10.0.22621.2567"));
    assert_eq!(
        list.identifier.as_deref(),
        Some("916ae75edb30da0146730000dc1be027")
    );
    assert_eq!(list.poqs, 2);
    let kinds: Vec<_> = list.primitives.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            PrimitiveKind::CreateDirectory,
            PrimitiveKind::CreateFile,
            PrimitiveKind::HardlinkFile,
            PrimitiveKind::MoveFile,
            PrimitiveKind::DeleteFile,
        ]
    );
    let hardlink = &list.primitives[2];
    assert_eq!(&*hardlink.source, r"\??\C:\Users\a\Desktop\ntoskrnl.exe");
    assert_eq!(
        hardlink.destination.as_deref(),
        Some(r"\SystemRoot\System32\ntoskrnl.exe")
    );
    // Element indexes count every element of the POQ; lines are the file's (the BOM is none).
    assert_eq!(hardlink.element, 3);
    assert_eq!(hardlink.line, 10);
    assert_eq!(list.primitives[4].element, 6);
    assert_eq!(
        &*list.primitives[4].source,
        r"\SystemRoot\System32\old & gone.dll"
    );
    assert_eq!(list.counts["SetKeyValue"], 1);
    assert_eq!(list.counts["Checkpoint"], 1);
    assert_eq!(list.counts.values().sum::<usize>(), 8);
    assert!(list.notes.is_empty(), "{:?}", list.notes);
}

#[test]
fn unknown_elements_and_attributes_are_notes() {
    let text = r#"<PendingTransaction Version="2.0" Colour="blue">
<Surprise/>
<POQ><MoveFile source="a" destination="b" speed="fast"/><Teleport path="x"/>
<DeleteFile/><HardlinkFile source="only"/></POQ></PendingTransaction>"#;
    let list = read_action_list(text.as_bytes()).unwrap();
    assert_eq!(list.primitives.len(), 1);
    assert_eq!(list.counts["Teleport"], 1);
    let notes = list.notes.join("\n");
    for expected in [
        "line 1: an attribute Colour of <PendingTransaction>",
        "line 2: an element <Surprise>",
        "line 3: an attribute speed of <MoveFile>",
        "line 3: an element <Teleport> in the POQ",
        "line 4: <DeleteFile> without its path",
        "line 4: <HardlinkFile> without its source and destination",
    ] {
        assert!(notes.contains(expected), "{expected}: {notes}");
    }
}

#[test]
fn what_is_not_a_list_says_where() {
    let err =
        read_action_list(b"<PendingTransaction>\n  <POQ>\n</PendingTransaction>").unwrap_err();
    let ActionListError::NotWellFormed { line, column, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!((line, column), (3, 1));
    assert_eq!(
        read_action_list(b"\xEF\xBB\xBF<a/>").unwrap_err(),
        ActionListError::WrongRoot { name: "a".into() }
    );
    assert_eq!(read_action_list(b"").unwrap_err(), ActionListError::NoRoot);
    assert_eq!(
        read_action_list(b"<PendingTransaction>\xff</PendingTransaction>").unwrap_err(),
        ActionListError::NotUtf8 { offset: 20 }
    );
    assert!(matches!(
        read_action_list(b"<PendingTransaction><POQ>").unwrap_err(),
        ActionListError::NotWellFormed { .. }
    ));
    assert!(matches!(
        read_action_list(b"<PendingTransaction/><PendingTransaction/>").unwrap_err(),
        ActionListError::NotWellFormed { .. }
    ));
}

#[test]
fn bounds_hold() {
    let deep = format!("<PendingTransaction>{}", "<a>".repeat(10_000));
    let err = read_action_list(deep.as_bytes()).unwrap_err();
    assert_eq!(
        err,
        ActionListError::TooDeep {
            line: 1,
            column: 21 + 3 * (DEPTH_LIMIT - 1),
            limit: DEPTH_LIMIT
        }
    );
    let err = read_with_limits(&template(), 100, DEPTH_LIMIT).unwrap_err();
    assert_eq!(
        err,
        ActionListError::TooLarge {
            len: template().len(),
            limit: 100
        }
    );
}

#[test]
fn many_primitives_keep_their_order_and_lines() {
    let mut text = String::from("<PendingTransaction><POQ>\n");
    for i in 0..50_000 {
        text.push_str(&format!(
            "<MoveFile source=\"\\SystemRoot\\WinSxS\\Temp\\PendingRenames\\{i}.dll\" destination=\"\\SystemRoot\\System32\\{i}.dll\"/>\n"
        ));
    }
    text.push_str("</POQ></PendingTransaction>");
    let list = read_action_list(text.as_bytes()).unwrap();
    assert_eq!(list.primitives.len(), 50_000);
    let last = list.primitives.last().unwrap();
    assert_eq!(last.element, 49_999);
    assert_eq!(last.line, 50_001);
    assert!(last.source.ends_with("\\49999.dll"));
}

/// Entities a document type declares are not expanded (no "billion laughs"): naming one is an
/// error at its place, as is any reference the XML specification does not predefine.
#[test]
fn declared_entities_are_not_expanded() {
    let text = "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n<PendingTransaction Identifier=\"&b;\"/>";
    let err = read_action_list(text.as_bytes()).unwrap_err();
    let ActionListError::NotWellFormed { line, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(line, 2);
    let list = read_action_list(b"<PendingTransaction Identifier=\"&lt;&#x41;&gt;\"/>").unwrap();
    assert_eq!(list.identifier.as_deref(), Some("<A>"));
}

#[test]
fn the_list_a_poqexec_command_names() {
    for (command, list) in [
        (
            r"C:\Windows\System32\poqexec.exe /display_progress \SystemRoot\WinSxS\pending.xml",
            Some(r"\SystemRoot\WinSxS\pending.xml"),
        ),
        (
            r"poqexec.exe /display_progress \??\C:\Users\a\Desktop\pending.xml",
            Some(r"\??\C:\Users\a\Desktop\pending.xml"),
        ),
        (
            r#""C:\Program Files\x\POQEXEC.EXE" "C:\Users\a b\pending.xml" /log"#,
            Some(r"C:\Users\a b\pending.xml"),
        ),
        (
            r"%systemroot%\system32\poqexec.exe %SystemRoot%\WinSxS\pending.xml",
            Some(r"\SystemRoot\WinSxS\pending.xml"),
        ),
        (r"autocheck autochk *", None),
        (r"poqexec.exe /display_progress", None),
        ("", None),
    ] {
        assert_eq!(list_named_by(command).as_deref(), list, "{command}");
    }
}

#[test]
fn the_identifier_gate() {
    let utf16 = |s: &str| {
        s.encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect::<Vec<u8>>()
    };
    let id = "916ae75edb30da0146730000dc1be027";
    assert_eq!(components_identifier(&utf16(id)).as_deref(), Some(id));
    assert_eq!(
        components_identifier(&utf16(&format!("{id}\0"))).as_deref(),
        Some(id)
    );
    assert_eq!(components_identifier(&[0x41]), None);
    assert_eq!(
        components_identifier(&[0x00, 0xd8]),
        None,
        "a lone surrogate"
    );
    let list = read_action_list(&template()).unwrap();
    assert!(identifier_admits(&list, Some(id)));
    assert!(identifier_admits(&list, Some(&id.to_uppercase())));
    assert!(!identifier_admits(
        &list,
        Some("00000000000000000000000000000000")
    ));
    assert!(!identifier_admits(&list, None));
    let without = read_action_list(b"<PendingTransaction/>").unwrap();
    assert!(!identifier_admits(&without, Some(id)));
}

#[test]
fn file_primitives_and_element_names_are_bounded() {
    let mut text = String::from("<PendingTransaction><POQ>\n");
    for i in 0..5 {
        text.push_str(&format!("<DeleteFile path=\"C:\\{i}\"/>\n<E{i}/>\n"));
    }
    text.push_str("</POQ></PendingTransaction>");
    let mut parse = Parse::new(&text, DEPTH_LIMIT);
    parse.primitives_limit = 5;
    assert_eq!(parse.run().unwrap().primitives.len(), 5);
    let mut parse = Parse::new(&text, DEPTH_LIMIT);
    parse.primitives_limit = 4;
    assert_eq!(
        parse.run().unwrap_err(),
        ActionListError::TooManyPrimitives { line: 10, limit: 4 }
    );
    let mut names = String::from("<PendingTransaction><POQ>");
    for i in 0..(NAMES_LIMIT + 10) {
        names.push_str(&format!("<E{i}/>"));
    }
    names.push_str("</POQ></PendingTransaction>");
    let list = read_action_list(names.as_bytes()).unwrap();
    assert_eq!(list.counts.len(), NAMES_LIMIT + 1);
    assert_eq!(list.counts["(other names)"], 10);
}

#[test]
fn empty_arguments_name_no_list_and_split_arguments_are_kept_whole() {
    // Found by the poqexec_command fuzz target: `""` is an argument, but names nothing.
    assert_eq!(list_named_by("poqexec.exe \"\""), None);
    assert_eq!(
        list_named_by("poqexec.exe C:\\a.xml \"\" /log"),
        Some("C:\\a.xml".into())
    );
    // One argument per string: a tab or a quote inside a string is part of the path.
    assert_eq!(
        list_named_by_arguments(&["poqexec.exe", "/display_progress", "C:\\a\tb.xml"]),
        Some("C:\\a\tb.xml".into())
    );
    assert_eq!(
        list_named_by_arguments(&[
            "C:\\Windows\\System32\\poqexec.exe",
            "%SystemRoot%\\x.xml",
            "/x"
        ]),
        Some("\\SystemRoot\\x.xml".into())
    );
    assert_eq!(list_named_by_arguments(&["cmd.exe", "x.xml"]), None);
    assert_eq!(list_named_by_arguments::<&str>(&[]), None);
}
