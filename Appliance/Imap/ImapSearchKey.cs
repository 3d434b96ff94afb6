using Appliance.Store;

namespace Appliance.Imap;

// The parsed search-key tree of SEARCH, SORT and THREAD (RFC 9051 §6.4.4). A parenthesized
// group and the top-level key list are an And; NEW, OLD and RECENT are rewritten at parse time
// (RFC 9051 has no \Recent, so RECENT matches nothing, NEW nothing, OLD everything).

public abstract record SearchKey;

public sealed record AllKey : SearchKey;

public sealed record NoneKey : SearchKey;

/// <summary>ANSWERED / UNANSWERED etc.: <see cref="Set"/> is false for the UN- form.</summary>
public sealed record FlagKey(MessageFlags Flag, bool Set) : SearchKey;

/// <summary>KEYWORD / UNKEYWORD (keywords compare case-insensitively).</summary>
public sealed record KeywordKey(string Keyword, bool Set) : SearchKey;

/// <summary>A message sequence set; numbers past the last message match nothing.</summary>
public sealed record SequenceKey(SequenceSet Set) : SearchKey;

public sealed record UidKey(SequenceSet Set) : SearchKey;

/// <summary>LARGER n (<see cref="Larger"/>) or SMALLER n, on the RFC822.SIZE.</summary>
public sealed record SizeKey(long Size, bool Larger) : SearchKey;

public enum DateComparison { Before, On, Since }

/// <summary>BEFORE/ON/SINCE on the internal date, or SENTBEFORE/SENTON/SENTSINCE (<see cref="Sent"/>) on the Date header.</summary>
public sealed record DateKey(DateOnly Date, DateComparison Comparison, bool Sent) : SearchKey;

/// <summary>BODY, TEXT, SUBJECT, FROM, TO, CC, BCC, HEADER: answered by the store's full-text search.</summary>
public sealed record TextKey(TextField Field, string Text, string? HeaderName) : SearchKey;

/// <summary>RFC 7162 §3.1.5 MODSEQ: messages whose mod-sequence is at least <see cref="ModSeq"/>.</summary>
public sealed record ModSeqKey(long ModSeq) : SearchKey;

public sealed record NotKey(SearchKey Key) : SearchKey;

public sealed record OrKey(SearchKey Left, SearchKey Right) : SearchKey;

public sealed record AndKey(IReadOnlyList<SearchKey> Keys) : SearchKey;
