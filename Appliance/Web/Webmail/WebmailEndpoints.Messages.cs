using Appliance.Directory;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using MimeKit;

namespace Appliance.Web.Webmail;

public sealed partial class WebmailEndpoints
{
    /// <summary>Types a browser may show inline from a message (in a sandboxed document): anything else is downloaded.</summary>
    private static readonly HashSet<string> InlineTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain",
    };

    private void MapMessages(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/message", Handle(async (ctx, _, user) =>
        {
            var ct = ctx.RequestAborted;
            var folder = MailStore.FolderName(Query(ctx, "folder"));
            var uid = QueryUid(ctx);
            var (stored, message) = await WebmailReader.OpenAsync(_store, user, folder, uid, ct);
            if (!stored.Flags.HasFlag(MessageFlags.Seen))
                await _store.StoreFlagsAsync(user, folder, [uid], FlagMode.Add, MessageFlags.Seen, [], null, ct);
            var remote = message.HtmlBody is { } html && HtmlSanitizer.Sanitize(html, new SanitizeOptions()).HadRemoteImages;
            var junk = await IsJunkFolderAsync(user, folder, ct);
            var attachments = WebmailReader.Attachments(message)
                .Select(a => new AttachmentInfo(a.Part, WebmailReader.AttachmentName(a.Entity, a.Part), a.Entity.ContentType.MimeType.ToLowerInvariant(), WebmailReader.DecodedSize(a.Entity)))
                .ToList();
            return Json(new MessageView(folder, uid, WebmailReader.Addresses(message.From), WebmailReader.Addresses(message.To), WebmailReader.Addresses(message.Cc),
                WebmailReader.Addresses(message.ReplyTo), message.Subject ?? "", message.Date == DateTimeOffset.MinValue ? stored.InternalDate : message.Date,
                message.MessageId ?? "", true, stored.Flags.HasFlag(MessageFlags.Flagged), stored.Flags.HasFlag(MessageFlags.Answered), junk,
                message.HtmlBody is not null, remote, attachments), WebmailJson.Default.MessageView);
        }));

        app.MapGet("/webmail/api/message/body", Handle(async (ctx, _, user) =>
        {
            var folder = MailStore.FolderName(Query(ctx, "folder"));
            var uid = QueryUid(ctx);
            var allowRemote = Query(ctx, "remote", "0") == "1";
            var message = await WebmailReader.LoadAsync(_store, user, folder, uid, ctx.RequestAborted);
            var doc = WebmailReader.BodyDocument(message, allowRemote);
            var h = ctx.Response.Headers;
            h.ContentSecurityPolicy = WebmailReader.BodyPolicy(allowRemote);
            h.XFrameOptions = "SAMEORIGIN";
            return Results.Content(doc, "text/html; charset=utf-8");
        }));

        app.MapGet("/webmail/api/message/part", Handle(async (ctx, _, user) =>
        {
            var folder = MailStore.FolderName(Query(ctx, "folder"));
            var uid = QueryUid(ctx);
            var message = await WebmailReader.LoadAsync(_store, user, folder, uid, ctx.RequestAborted);
            var path = Query(ctx, "part");
            var part = WebmailReader.FindPart(message, path, null) ?? throw new WebmailException(404, "the message has no such part");
            var type = part.ContentType.MimeType.ToLowerInvariant();
            var inline = Query(ctx, "download", "0") != "1" && InlineTypes.Contains(type);
            var data = new MemoryStream();
            if (part.Content is not null) await part.Content.DecodeToAsync(data, ctx.RequestAborted);
            data.Position = 0;
            var h = ctx.Response.Headers;
            h.ContentSecurityPolicy = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox";
            h.XFrameOptions = "SAMEORIGIN";
            h.ContentDisposition = Disposition(inline, WebmailReader.AttachmentName(part, path));
            return Results.Stream(data, inline ? (type == "text/plain" ? "text/plain; charset=" + (part.ContentType.Charset ?? "utf-8") : type) : "application/octet-stream");
        }));

        app.MapGet("/webmail/api/message/raw", Handle(async (ctx, _, user) =>
        {
            var folder = MailStore.FolderName(Query(ctx, "folder"));
            var uid = QueryUid(ctx);
            var stored = await _store.GetMessageAsync(user, folder, uid, ctx.RequestAborted) ?? throw new WebmailException(404, "that message is gone (moved or deleted meanwhile)");
            ctx.Response.Headers.ContentDisposition = Disposition(false, $"message-{uid}.eml");
            return Results.Stream(_store.OpenMessage(user, stored), "message/rfc822");
        }));

        app.MapPost("/webmail/api/messages/flags", Handle(async (ctx, _, user) =>
        {
            var (body, folder, uids) = await ChangeAsync(ctx);
            if (body.Seen is { } seen)
                await _store.StoreFlagsAsync(user, folder, uids, seen ? FlagMode.Add : FlagMode.Remove, MessageFlags.Seen, [], null, ctx.RequestAborted);
            if (body.Flagged is { } flagged)
                await _store.StoreFlagsAsync(user, folder, uids, flagged ? FlagMode.Add : FlagMode.Remove, MessageFlags.Flagged, [], null, ctx.RequestAborted);
            return Results.NoContent();
        }));

        app.MapPost("/webmail/api/messages/move", Handle(async (ctx, _, user) =>
        {
            var (body, folder, uids) = await ChangeAsync(ctx);
            if (string.IsNullOrEmpty(body.Target)) throw new WebmailException(400, "name the target folder");
            var target = MailStore.FolderName(body.Target);
            if (target == folder) return Results.NoContent();
            await MoveAsync(user, folder, uids, target, ctx.RequestAborted);
            return Results.NoContent();
        }));

        app.MapPost("/webmail/api/messages/delete", Handle(async (ctx, _, user) =>
        {
            var (_, folder, uids) = await ChangeAsync(ctx);
            var trash = await SpecialFolderAsync(user, "\\Trash", "Trash", ctx.RequestAborted);
            if (folder == trash) await _store.ExpungeAsync(user, folder, uids, ctx.RequestAborted);
            else await MoveAsync(user, folder, uids, trash, ctx.RequestAborted);
            return Results.NoContent();
        }));

        // Through MailStore.CopyAsync like an IMAP MOVE, so the mailbox's spam filter learns from it.
        app.MapPost("/webmail/api/messages/junk", Handle(async (ctx, _, user) =>
        {
            var (body, folder, uids) = await ChangeAsync(ctx);
            var junk = await SpecialFolderAsync(user, "\\Junk", MailStore.Junk, ctx.RequestAborted);
            if (body.Junk != false) await MoveAsync(user, folder, uids, junk, ctx.RequestAborted);
            else await MoveAsync(user, folder, uids, folder == junk ? MailStore.Inbox : folder, ctx.RequestAborted);
            return Results.NoContent();
        }));
    }

    private static string Disposition(bool inline, string fileName)
    {
        var ascii = new string([.. fileName.Select(c => c is >= ' ' and < '\u007f' and not '"' and not '\\' ? c : '_')]);
        return $"{(inline ? "inline" : "attachment")}; filename=\"{ascii}\"; filename*=UTF-8''{Uri.EscapeDataString(fileName)}";
    }

    private static async Task<(MessagesChange Body, string Folder, long[] Uids)> ChangeAsync(HttpContext ctx)
    {
        var body = await Body(ctx, WebmailJson.Default.MessagesChange);
        if (string.IsNullOrEmpty(body.Folder)) throw new WebmailException(400, "name the folder");
        if (body.Uids is not { Length: > 0 and <= 10_000 } uids || uids.Any(u => u <= 0))
            throw new WebmailException(400, "uids must list 1 to 10,000 messages");
        return (body, MailStore.FolderName(body.Folder), uids);
    }

    private async Task MoveAsync(MailUser user, string folder, long[] uids, string target, CancellationToken ct)
    {
        if (target == folder) return;
        if (await _store.CopyAsync(user, folder, uids, target, move: true, ct) is null)
            throw new WebmailException(507, "the mailbox is full");
    }

    /// <summary>The folder with a special use (RFC 6154), else one of the usual name; created when the mailbox has neither.</summary>
    private async Task<string> SpecialFolderAsync(MailUser user, string specialUse, string name, CancellationToken ct)
    {
        var folders = await _store.ListFoldersAsync(user, ct);
        if (folders.FirstOrDefault(f => f.SpecialUse == specialUse) is { } special) return special.Name;
        if (folders.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase)) is { } named) return named.Name;
        try { await _store.CreateFolderAsync(user, name, specialUse, ct); }
        catch (FolderExistsException) { }
        return name;
    }

    private async Task<bool> IsJunkFolderAsync(MailUser user, string folder, CancellationToken ct) =>
        await _store.GetFolderInfoAsync(user, folder, ct) is { } info
        && (info.SpecialUse == "\\Junk" || (info.SpecialUse is null && info.Name.Equals(MailStore.Junk, StringComparison.OrdinalIgnoreCase)));
}
