namespace Appliance.Filtering.Sieve;

/// <summary>What a script is run against: the envelope and the message as received.</summary>
public sealed record SieveContext(string EnvelopeFrom, string EnvelopeTo, byte[] Message)
{
    /// <summary>The recipient's own addresses (vacation replies only to mail addressed to one of them).</summary>
    public IReadOnlyList<string> UserAddresses { get; init; } = [];

    /// <summary>The recipient's folders, for mailboxexists (RFC 5490); may be empty.</summary>
    public IReadOnlySet<string> ExistingFolders { get; init; } = new HashSet<string>();
}

/// <summary>The actions to carry out, in the order the script gave them; Error is set when the run failed (then only a keep remains).</summary>
public sealed record SieveOutcome(IReadOnlyList<SieveAction> Actions, string? Error);

/// <summary>One thing to do with the message.</summary>
public abstract record SieveAction;

/// <summary>Deliver to INBOX with these IMAP flags and keywords (explicit keep or the implicit keep).</summary>
public sealed record KeepAction(IReadOnlyList<string> Flags) : SieveAction
{
    public bool Equals(KeepAction? other) => other is not null && Flags.SequenceEqual(other.Flags);
    public override int GetHashCode() => Flags.Count;
}

/// <summary>Deliver to Folder ("/" separates levels); Create: the script allows creating it (RFC 5490).</summary>
public sealed record FileIntoAction(string Folder, IReadOnlyList<string> Flags, bool Create) : SieveAction
{
    public bool Equals(FileIntoAction? other) =>
        other is not null && Folder == other.Folder && Create == other.Create && Flags.SequenceEqual(other.Flags);
    public override int GetHashCode() => HashCode.Combine(Folder, Create);
}

/// <summary>Forward the message unchanged to Address.</summary>
public sealed record RedirectAction(string Address) : SieveAction;

/// <summary>Refuse the message with Reason: reject (a bounce, RFC 5429 §2.2) or ereject (refused in SMTP when possible, §2.1).</summary>
public sealed record RejectAction(string Reason, bool Extended) : SieveAction;

/// <summary>The script discarded the message: it cancelled the implicit keep; nothing is to be done for it.</summary>
public sealed record DiscardAction : SieveAction;

/// <summary>
/// Send an auto-reply (RFC 5230) unless one was sent to this sender with this Handle within Period;
/// SieveVacation.WhyNotRespond and BuildReply make the remaining decisions and the message.
/// </summary>
public sealed record VacationAction(string Reason, bool Mime, string? Subject, string? From, IReadOnlyList<string> Addresses, string Handle, TimeSpan Period) : SieveAction
{
    public bool Equals(VacationAction? other) =>
        other is not null && Reason == other.Reason && Mime == other.Mime && Subject == other.Subject && From == other.From
        && Addresses.SequenceEqual(other.Addresses) && Handle == other.Handle && Period == other.Period;
    public override int GetHashCode() => HashCode.Combine(Reason, Handle, Period);
}
