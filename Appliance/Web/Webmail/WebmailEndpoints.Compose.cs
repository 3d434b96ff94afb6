using Appliance.Directory;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using MimeKit;

namespace Appliance.Web.Webmail;

public sealed partial class WebmailEndpoints
{
    private void MapCompose(IEndpointRouteBuilder app)
    {
        app.MapPost("/webmail/api/uploads", Handle(async (ctx, session, _) =>
        {
            if (!ctx.Request.HasFormContentType) throw new WebmailException(400, "send the file as multipart/form-data");
            var form = await ctx.Request.ReadFormAsync(ctx.RequestAborted);
            var file = form.Files.GetFile("file") ?? throw new WebmailException(400, "send the file in a field named file");
            if (session.UploadedBytes + file.Length > _composer.MaxMessageSize)
                throw new WebmailException(413, $"attachments may add up to {_composer.MaxMessageSize / (1024 * 1024)} MB per message");
            var upload = await ReadUploadAsync(file, ctx.RequestAborted);
            session.Uploads[upload.Id] = upload;
            return Json(upload.Info, WebmailJson.Default.UploadInfo, 201);
        }));

        app.MapPost("/webmail/api/send", Handle(async (ctx, session, user) =>
        {
            var ct = ctx.RequestAborted;
            var form = await Body(ctx, WebmailJson.Default.ComposeRequest, ComposeBodyBytes);
            var message = await _composer.BuildAsync(user, session, form, LoadSettings(user.Address), forSending: true, ct);
            await _composer.SendAsync(user, session, message, ct);
            Log.Info("webmail sent user={0} id={1} rcpts={2}", user.Address, message.MessageId, message.To.Count + message.Cc.Count + message.Bcc.Count);
            foreach (var id in form.Attachments ?? []) session.Uploads.TryRemove(id, out _);
            // The mail is out: what follows is the user's bookkeeping, and a failure there must not read as "not sent".
            var saved = false;
            try
            {
                var sent = await SpecialFolderAsync(user, "\\Sent", "Sent", ct);
                saved = await _composer.FileAsync(user, sent, message, MessageFlags.Seen, ct) is not null;
                if (form.InReplyTo is { Folder: { Length: > 0 } folder, Uid: > 0 } re)
                    await _store.StoreFlagsAsync(user, MailStore.FolderName(folder), [re.Uid], FlagMode.Add, MessageFlags.Answered, [], null, ct);
                if (form.Draft is { Folder: { Length: > 0 } draftFolder, Uid: > 0 } draft)
                    await _store.ExpungeAsync(user, MailStore.FolderName(draftFolder), [draft.Uid], ct);
            }
            catch (Exception ex) when (ex is FolderNotFoundException or UnitUnavailableException or WebmailException)
            {
                Log.Warn("webmail after-send bookkeeping failed user={0}: {1}", user.Address, ex.Message);
            }
            return Json(new SendResult(message.MessageId ?? "", saved), WebmailJson.Default.SendResult);
        }));

        app.MapPost("/webmail/api/drafts", Handle(async (ctx, session, user) =>
        {
            var ct = ctx.RequestAborted;
            var form = await Body(ctx, WebmailJson.Default.ComposeRequest, ComposeBodyBytes);
            var message = await _composer.BuildAsync(user, session, form, LoadSettings(user.Address), forSending: false, ct);
            var drafts = await SpecialFolderAsync(user, "\\Drafts", "Drafts", ct);
            var uid = await _composer.FileAsync(user, drafts, message, MessageFlags.Draft | MessageFlags.Seen, ct)
                ?? throw new WebmailException(507, "the mailbox is full: the draft was not saved");
            if (form.Draft is { Folder: { Length: > 0 } old, Uid: > 0 } previous)
                await _store.ExpungeAsync(user, MailStore.FolderName(old), [previous.Uid], ct);
            return Json(new MessageRef { Folder = drafts, Uid = uid }, WebmailJson.Default.MessageRef);
        }));

        app.MapGet("/webmail/api/message/reply", Handle(async (ctx, session, user) =>
        {
            var ct = ctx.RequestAborted;
            var folder = MailStore.FolderName(Query(ctx, "folder"));
            var uid = QueryUid(ctx);
            var mode = Query(ctx, "mode", "reply");
            if (mode is not ("reply" or "all" or "forward" or "draft")) throw new WebmailException(400, "mode= is reply, all, forward or draft");
            var original = await WebmailReader.LoadAsync(_store, user, folder, uid, ct);
            var here = new MessageRef { Folder = folder, Uid = uid };
            if (mode == "draft")
                return Json(new ComposeDraft(WebmailReader.Join(original.To.Mailboxes), WebmailReader.Join(original.Cc.Mailboxes), WebmailReader.Join(original.Bcc.Mailboxes),
                    original.Subject ?? "", original.TextBody ?? WebmailReader.QuotableText(original), null, here, await UploadAttachmentsAsync(session, original, ct)),
                    WebmailJson.Default.ComposeDraft);
            var (to, cc, subject, text) = WebmailReader.Reply(original, mode, new HashSet<string>([user.Address], StringComparer.Ordinal));
            var attachments = mode == "forward" ? await UploadAttachmentsAsync(session, original, ct) : [];
            return Json(new ComposeDraft(to, cc, "", subject, text, mode == "forward" ? null : here, null, attachments), WebmailJson.Default.ComposeDraft);
        }));
    }

    /// <summary>The compose form's JSON (its attachments are uploads, named by id): room for a long text.</summary>
    private const long ComposeBodyBytes = 8 << 20;

    private static async Task<PendingUpload> ReadUploadAsync(IFormFile file, CancellationToken ct)
    {
        using var data = new MemoryStream((int)Math.Min(file.Length, int.MaxValue));
        await file.CopyToAsync(data, ct);
        var name = Path.GetFileName(file.FileName.Replace('\\', '/'));
        if (string.IsNullOrWhiteSpace(name) || name.Any(char.IsControl)) name = "attachment";
        var type = ContentType.TryParse(file.ContentType ?? "", out var parsed) ? parsed.MimeType.ToLowerInvariant() : "application/octet-stream";
        return PendingUpload.Of(name, type, data.ToArray());
    }

    /// <summary>A forwarded message's (or a draft's) attachments, made uploads of the session so the new message can carry them.</summary>
    private async Task<IReadOnlyList<UploadInfo>> UploadAttachmentsAsync(WebmailSession session, MimeMessage original, CancellationToken ct)
    {
        var list = new List<UploadInfo>();
        foreach (var (path, part) in WebmailReader.Attachments(original))
        {
            using var data = new MemoryStream();
            if (part.Content is not null) await part.Content.DecodeToAsync(data, ct);
            if (session.UploadedBytes + data.Length > _composer.MaxMessageSize) throw new WebmailException(413, "the attachments are larger than a message may be");
            var upload = PendingUpload.Of(WebmailReader.AttachmentName(part, path), part.ContentType.MimeType.ToLowerInvariant(), data.ToArray());
            session.Uploads[upload.Id] = upload;
            list.Add(upload.Info);
        }
        return list;
    }
}
