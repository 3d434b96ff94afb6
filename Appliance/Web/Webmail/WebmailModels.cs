using System.Text.Json.Serialization;

namespace Appliance.Web.Webmail;

// Bodies of the webmail's API (docs/webmail.md). Requests are read by hand (WebmailEndpoints.Body)
// so that one that does not parse gets a problem document, not an empty 400.

public sealed class WebmailLogin
{
    public string? Address { get; set; }
    public string? Password { get; set; }
}

public sealed record WebmailSessionInfo(string Address, string DisplayName, string Csrf);

public sealed record WebmailFolder(string Name, string? SpecialUse, int Messages, int Unread, bool Subscribed);
public sealed record WebmailFolders(IReadOnlyList<WebmailFolder> Folders);

public sealed class FolderCreate { public string? Name { get; set; } }
public sealed class FolderRename
{
    public string? Folder { get; set; }
    public string? NewName { get; set; }
}

public sealed record MailAddress(string Name, string Address);

public sealed record MessageRow(long Uid, MailAddress From, IReadOnlyList<MailAddress> To, string Subject, DateTimeOffset Date, long Size,
    bool Seen, bool Flagged, bool Answered, bool Draft, bool Attachments, int Depth);

public sealed record MessageList(string Folder, int Total, int Offset, IReadOnlyList<MessageRow> Messages);

public sealed record AttachmentInfo(string Part, string Name, string Type, long Size);

public sealed record MessageView(string Folder, long Uid, IReadOnlyList<MailAddress> From, IReadOnlyList<MailAddress> To, IReadOnlyList<MailAddress> Cc,
    IReadOnlyList<MailAddress> ReplyTo, string Subject, DateTimeOffset Date, string MessageId, bool Seen, bool Flagged, bool Answered, bool Junk,
    bool HasHtml, bool RemoteImages, IReadOnlyList<AttachmentInfo> Attachments);

public sealed class MessageRef
{
    public string? Folder { get; set; }
    public long Uid { get; set; }
}

public sealed class MessagesChange
{
    public string? Folder { get; set; }
    public long[]? Uids { get; set; }
    public bool? Seen { get; set; }
    public bool? Flagged { get; set; }
    public string? Target { get; set; }
    public bool? Junk { get; set; }
}

public sealed record UploadInfo(string Id, string Name, string Type, long Size);

/// <summary>A message being written: what compose sends, and what reply/forward/draft prefill.</summary>
public sealed class ComposeRequest
{
    public string? To { get; set; }
    public string? Cc { get; set; }
    public string? Bcc { get; set; }
    public string? Subject { get; set; }
    public string? Text { get; set; }
    public string? Html { get; set; }
    public string[]? Attachments { get; set; }
    public MessageRef? InReplyTo { get; set; }
    public MessageRef? Draft { get; set; }
}

public sealed record ComposeDraft(string To, string Cc, string Bcc, string Subject, string Text, MessageRef? InReplyTo, MessageRef? Draft,
    IReadOnlyList<UploadInfo> Attachments);

public sealed record SendResult(string MessageId, bool SavedInSent);

public sealed class Contact
{
    public string? Id { get; set; }
    public string? Name { get; set; }
    public string[]? Emails { get; set; }
    public string? Phone { get; set; }
    public string? Notes { get; set; }
    public string[]? Groups { get; set; }
}

public sealed record ContactList(IReadOnlyList<Contact> Contacts);
public sealed record Suggestion(string Label, string Value);
public sealed record SuggestionList(IReadOnlyList<Suggestion> Suggestions);
public sealed record ImportResult(int Imported);

public sealed class Note
{
    public string? Id { get; set; }
    public string? Title { get; set; }
    public string? Body { get; set; }
    public DateTimeOffset? Updated { get; set; }
}

public sealed record NoteList(IReadOnlyList<Note> Notes);

public sealed record FileEntry(string Name, long Size, string Type, DateTimeOffset Updated);
public sealed record FileListing(string Folder, IReadOnlyList<string> Folders, IReadOnlyList<FileEntry> Files, long UsedBytes, long QuotaBytes);
public sealed record FilesAdded(IReadOnlyList<FileEntry> Files);
public sealed class FilePath
{
    public string? Path { get; set; }
    public string? From { get; set; }
    public string? To { get; set; }
}

public sealed class WebmailSettings
{
    public string? DisplayName { get; set; }
    public string? ReplyTo { get; set; }
    public string? Signature { get; set; }
    public string? Language { get; set; }
    public string? TimeZone { get; set; }
    public int? PageSize { get; set; }
    public bool? Threads { get; set; }
    public string? RemoteImages { get; set; }
}

public sealed class PasswordChange
{
    public string? Current { get; set; }
    public string? Password { get; set; }
}

public sealed class VacationSettings
{
    public bool Enabled { get; set; }
    public string? Subject { get; set; }
    public string? Body { get; set; }
    public int? Days { get; set; }
}

public sealed class FilterSettings { public string? Script { get; set; } }

[JsonSerializable(typeof(WebmailLogin))]
[JsonSerializable(typeof(WebmailSessionInfo))]
[JsonSerializable(typeof(WebmailFolders))]
[JsonSerializable(typeof(FolderCreate))]
[JsonSerializable(typeof(FolderRename))]
[JsonSerializable(typeof(MessageList))]
[JsonSerializable(typeof(MessageView))]
[JsonSerializable(typeof(MessagesChange))]
[JsonSerializable(typeof(UploadInfo))]
[JsonSerializable(typeof(ComposeRequest))]
[JsonSerializable(typeof(ComposeDraft))]
[JsonSerializable(typeof(SendResult))]
[JsonSerializable(typeof(MessageRef))]
[JsonSerializable(typeof(Contact))]
[JsonSerializable(typeof(ContactList))]
[JsonSerializable(typeof(SuggestionList))]
[JsonSerializable(typeof(ImportResult))]
[JsonSerializable(typeof(Note))]
[JsonSerializable(typeof(NoteList))]
[JsonSerializable(typeof(FileListing))]
[JsonSerializable(typeof(FilesAdded))]
[JsonSerializable(typeof(FilePath))]
[JsonSerializable(typeof(WebmailSettings))]
[JsonSerializable(typeof(PasswordChange))]
[JsonSerializable(typeof(VacationSettings))]
[JsonSerializable(typeof(FilterSettings))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
public sealed partial class WebmailJson : JsonSerializerContext;
