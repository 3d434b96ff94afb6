namespace Appliance.Imap;

/// <summary>
/// What SEARCH, SORT and THREAD run against: the store's search source for the selected folder,
/// the session's view of it, where responses go, the command's tag, whether it was the UID
/// variant (results are UIDs), whether IMAP4rev2 is enabled (SEARCH answers with ESEARCH) and
/// whether UTF8=ACCEPT is enabled (SEARCH then refuses CHARSET, RFC 6855 §3).
/// </summary>
public sealed record ImapSearchContext(
    ISearchSource Source,
    SelectedMailbox Mailbox,
    ImapWriter Writer,
    string Tag,
    bool Uid,
    bool Rev2,
    bool Utf8Accept,
    CancellationToken Ct);
