using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using MimeKit;

namespace Appliance.Web.Webmail;

// Implementation notes
// - The address book, notes, personal files and settings are items of the db unit's partition
//   (Store/Partition.Webmail.cs): journalled, replicated and failed over with that unit. An item
//   is (kind, id) → bytes: contacts, notes and settings are JSON (source-generated), a file is
//   its bytes under its path ("/docs/a.pdf", parent "/docs"), a files folder a "dir" item.
// - Vacation and filters are a Sieve script named "webmail" in the mailbox's partition, the one
//   delivery runs (Filtering/SieveDelivery.cs), built from the two settings kept as items; the
//   user's rules are checked by the same parser ManageSieve uses before anything is stored.
//   Saving either activates that script, replacing one activated over ManageSieve.

public sealed partial class WebmailEndpoints
{
    private const string ContactKind = "contact", NoteKind = "note", SettingsKind = "settings", FileKind = "file", DirKind = "dir";
    private const string SettingsId = "settings", VacationId = "vacation", FiltersId = "filters";
    /// <summary>The Sieve script the webmail writes.</summary>
    public const string SieveScriptName = "webmail";

    // ---- the db unit ----

    private async Task PutItemAsync(MailUser user, string kind, string id, string parent, string name, byte[] data, bool mustBeNew = false)
    {
        switch (await _store.PutWebmailItemAsync(user, kind, id, parent, name, data, _options.QuotaBytes, mustBeNew))
        {
            case WebmailResult.OverQuota:
                throw new WebmailException(413, $"your webmail storage is full ({_options.QuotaBytes / (1024 * 1024)} MB): delete some files first");
            case WebmailResult.Exists:
                throw new WebmailException(409, $"{name} already exists");
        }
    }

    private T? LoadItem<T>(string address, string kind, string id, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class =>
        _store.Db.GetWebmailItem(address, kind, id) is { Data: { } data } ? JsonSerializer.Deserialize(data, type) : null;

    /// <summary>The user's settings, with the defaults for what was never set.</summary>
    private WebmailSettings LoadSettings(string address)
    {
        var s = LoadItem(address, SettingsKind, SettingsId, WebmailJson.Default.WebmailSettings) ?? new WebmailSettings();
        s.DisplayName ??= "";
        s.ReplyTo ??= "";
        s.Signature ??= "";
        s.Language ??= "en";
        s.TimeZone ??= "";
        s.PageSize ??= 50;
        s.Threads ??= false;
        s.RemoteImages ??= "ask";
        return s;
    }

    private void MapData(IEndpointRouteBuilder app)
    {
        MapContacts(app);
        MapNotes(app);
        MapFiles(app);
        MapSettings(app);
        MapInternal(app);
    }

    // ---- address book ----

    private void MapContacts(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/contacts", HandleData((ctx, _, user) =>
        {
            var q = ctx.Request.Query["q"].ToString().Trim();
            var contacts = Contacts(user).Where(c => q.Length == 0 || Matches(c, q)).ToList();
            return Task.FromResult(Json(new ContactList(contacts), WebmailJson.Default.ContactList));
        }));
        app.MapPost("/webmail/api/contacts", HandleData(async (ctx, _, user) =>
        {
            var contact = CheckContact(await Body(ctx, WebmailJson.Default.Contact));
            contact.Id = NewId();
            await SaveContactAsync(user, contact, mustBeNew: true);
            return Json(contact, WebmailJson.Default.Contact, 201);
        }));
        app.MapPut("/webmail/api/contacts/{id}", HandleData(async (ctx, _, user) =>
        {
            var id = ctx.Request.RouteValues["id"] as string ?? "";
            if (_store.GetWebmailItem(user, ContactKind, id) is null) throw new WebmailException(404, "there is no such contact");
            var contact = CheckContact(await Body(ctx, WebmailJson.Default.Contact));
            contact.Id = id;
            await SaveContactAsync(user, contact, mustBeNew: false);
            return Json(contact, WebmailJson.Default.Contact);
        }));
        app.MapDelete("/webmail/api/contacts/{id}", HandleData(async (ctx, _, user) =>
        {
            var id = ctx.Request.RouteValues["id"] as string ?? "";
            if (await _store.DeleteWebmailItemAsync(user, ContactKind, id, withChildren: false) == WebmailResult.NotFound)
                throw new WebmailException(404, "there is no such contact");
            return Results.NoContent();
        }));
        app.MapGet("/webmail/api/contacts/complete", HandleData((ctx, _, user) =>
        {
            var q = ctx.Request.Query["q"].ToString().Trim();
            var list = new List<Suggestion>();
            if (q.Length > 0)
            {
                var contacts = Contacts(user);
                foreach (var c in contacts)
                    foreach (var email in c.Emails ?? [])
                        if ((c.Name ?? "").Contains(q, StringComparison.OrdinalIgnoreCase) || email.Contains(q, StringComparison.OrdinalIgnoreCase))
                        {
                            var value = new MailboxAddress(c.Name ?? "", email).ToString(true);
                            list.Add(new Suggestion(value, value));
                        }
                foreach (var group in contacts.SelectMany(c => c.Groups ?? []).Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase))
                    if (group.Contains(q, StringComparison.OrdinalIgnoreCase))
                    {
                        var members = contacts.Where(c => (c.Groups ?? []).Contains(group, StringComparer.OrdinalIgnoreCase) && c.Emails is { Length: > 0 })
                            .Select(c => new MailboxAddress(c.Name ?? "", c.Emails![0]).ToString(true)).ToList();
                        if (members.Count > 0) list.Add(new Suggestion($"{group} ({members.Count})", string.Join(", ", members)));
                    }
            }
            return Task.FromResult(Json(new SuggestionList([.. list.Take(15)]), WebmailJson.Default.SuggestionList));
        }));
        app.MapGet("/webmail/api/contacts/export", HandleData((ctx, _, user) =>
        {
            ctx.Response.Headers.ContentDisposition = Disposition(false, "contacts.vcf");
            return Task.FromResult(Results.Text(VCard.Write(Contacts(user)), "text/vcard; charset=utf-8"));
        }));
        app.MapPost("/webmail/api/contacts/import", HandleData(async (ctx, _, user) =>
        {
            if (ctx.Request.ContentLength > VCard.MaxImportBytes) throw new WebmailException(413, "import at most 5 MB of vCards at a time");
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            var text = await reader.ReadToEndAsync(ctx.RequestAborted);
            if (text.Length > VCard.MaxImportBytes) throw new WebmailException(413, "import at most 5 MB of vCards at a time");
            var cards = VCard.Read(text);
            if (cards.Count == 0) throw new WebmailException(400, "no vCard (BEGIN:VCARD … END:VCARD) in what was sent");
            var imported = 0;
            foreach (var card in cards)
            {
                Contact contact;
                try { contact = CheckContact(card); }
                catch (WebmailException) { continue; } // a card without a name or a usable address is skipped
                contact.Id = NewId();
                await SaveContactAsync(user, contact, mustBeNew: true);
                imported++;
            }
            return Json(new ImportResult(imported), WebmailJson.Default.ImportResult);
        }));
    }

    private List<Contact> Contacts(MailUser user) =>
        [.. _store.ListWebmailItems(user, ContactKind, null, withData: true)
            .Select(i => JsonSerializer.Deserialize(i.Data!, WebmailJson.Default.Contact)!)
            .OrderBy(c => c.Name, StringComparer.CurrentCultureIgnoreCase)];

    private static bool Matches(Contact c, string q) =>
        (c.Name ?? "").Contains(q, StringComparison.OrdinalIgnoreCase)
        || (c.Emails ?? []).Any(e => e.Contains(q, StringComparison.OrdinalIgnoreCase))
        || (c.Groups ?? []).Any(g => g.Contains(q, StringComparison.OrdinalIgnoreCase));

    private Task SaveContactAsync(MailUser user, Contact contact, bool mustBeNew) =>
        PutItemAsync(user, ContactKind, contact.Id!, "", contact.Name!, JsonSerializer.SerializeToUtf8Bytes(contact, WebmailJson.Default.Contact), mustBeNew);

    private static Contact CheckContact(Contact c)
    {
        var name = (c.Name ?? "").Trim();
        var emails = (c.Emails ?? []).Select(e => e.Trim()).Where(e => e.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        foreach (var e in emails)
            if (!MailboxAddress.TryParse(e, out var parsed) || parsed.Address != e || e.IndexOf('@') is <= 0 || e.EndsWith('@'))
                throw new WebmailException(400, $"\"{e}\" is not an e-mail address");
        if (name.Length == 0) name = emails.FirstOrDefault() ?? throw new WebmailException(400, "a contact needs a name or an address");
        var groups = (c.Groups ?? []).Select(g => g.Trim()).Where(g => g.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToArray();
        if (name.Length > 200 || emails.Length > 20 || groups.Length > 20 || groups.Any(g => g.Length > 100) || (c.Phone?.Length ?? 0) > 100 || (c.Notes?.Length ?? 0) > 10_000)
            throw new WebmailException(400, "a contact has a name up to 200 characters, 20 addresses, 20 groups, a phone up to 100 characters and notes up to 10,000");
        if (name.Any(char.IsControl) || groups.Any(g => g.Any(char.IsControl)) || (c.Phone ?? "").Any(char.IsControl))
            throw new WebmailException(400, "names, groups and phone numbers are one line each");
        return new Contact { Name = name, Emails = emails, Phone = c.Phone?.Trim() ?? "", Notes = c.Notes ?? "", Groups = groups };
    }

    private static string NewId() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));

    // ---- notes ----

    private void MapNotes(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/notes", HandleData((ctx, _, user) =>
        {
            var notes = _store.ListWebmailItems(user, NoteKind, null, withData: true)
                .Select(i => { var n = JsonSerializer.Deserialize(i.Data!, WebmailJson.Default.Note)!; n.Id = i.Id; n.Updated = i.Updated; return n; })
                .OrderByDescending(n => n.Updated).ToList();
            return Task.FromResult(Json(new NoteList(notes), WebmailJson.Default.NoteList));
        }));
        app.MapPost("/webmail/api/notes", HandleData(async (ctx, _, user) =>
        {
            var note = CheckNote(await Body(ctx, WebmailJson.Default.Note));
            note.Id = NewId();
            return Json(await SaveNoteAsync(user, note, mustBeNew: true), WebmailJson.Default.Note, 201);
        }));
        app.MapPut("/webmail/api/notes/{id}", HandleData(async (ctx, _, user) =>
        {
            var id = ctx.Request.RouteValues["id"] as string ?? "";
            if (_store.GetWebmailItem(user, NoteKind, id) is null) throw new WebmailException(404, "there is no such note");
            var note = CheckNote(await Body(ctx, WebmailJson.Default.Note));
            note.Id = id;
            return Json(await SaveNoteAsync(user, note, mustBeNew: false), WebmailJson.Default.Note);
        }));
        app.MapDelete("/webmail/api/notes/{id}", HandleData(async (ctx, _, user) =>
        {
            var id = ctx.Request.RouteValues["id"] as string ?? "";
            if (await _store.DeleteWebmailItemAsync(user, NoteKind, id, withChildren: false) == WebmailResult.NotFound)
                throw new WebmailException(404, "there is no such note");
            return Results.NoContent();
        }));
    }

    private static Note CheckNote(Note n)
    {
        var title = (n.Title ?? "").Trim();
        var body = n.Body ?? "";
        if (title.Length == 0) title = body.Split('\n', 2)[0].Trim() is { Length: > 0 } first ? first[..Math.Min(first.Length, 80)] : "Untitled";
        if (title.Length > 200 || body.Length > 200_000) throw new WebmailException(400, "a note has a title up to 200 characters and up to 200,000 characters of text");
        return new Note { Title = title, Body = body };
    }

    private async Task<Note> SaveNoteAsync(MailUser user, Note note, bool mustBeNew)
    {
        var stored = new Note { Title = note.Title, Body = note.Body };
        await PutItemAsync(user, NoteKind, note.Id!, "", note.Title!, JsonSerializer.SerializeToUtf8Bytes(stored, WebmailJson.Default.Note), mustBeNew);
        note.Updated = _store.GetWebmailItem(user, NoteKind, note.Id!)?.Updated ?? DateTimeOffset.UtcNow;
        return note;
    }

    // ---- personal files ----

    private void MapFiles(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/files", HandleData((ctx, _, user) =>
        {
            var folder = FolderPath(Query(ctx, "folder", "/"));
            MustBeFolder(user, folder);
            var folders = _store.ListWebmailItems(user, DirKind, folder).Select(i => i.Name).ToList();
            var files = _store.ListWebmailItems(user, FileKind, folder).Select(ToEntry).ToList();
            return Task.FromResult(Json(new FileListing(folder, folders, files, _store.WebmailBytes(user), _options.QuotaBytes), WebmailJson.Default.FileListing));
        }));
        app.MapPost("/webmail/api/files", HandleData(async (ctx, _, user) =>
        {
            var folder = FolderPath(Query(ctx, "folder", "/"));
            MustBeFolder(user, folder);
            if (!ctx.Request.HasFormContentType) throw new WebmailException(400, "send the files as multipart/form-data");
            var form = await ctx.Request.ReadFormAsync(ctx.RequestAborted);
            if (form.Files.Count == 0) throw new WebmailException(400, "send the files in fields named file");
            var added = new List<string>();
            foreach (var file in form.Files)
            {
                var name = Path.GetFileName(file.FileName.Replace('\\', '/'));
                var path = FolderPath(Child(folder, name));
                if (file.Length > _options.MaxFileBytes) throw new WebmailException(413, $"{name} is larger than {_options.MaxFileBytes / (1024 * 1024)} MB, the most one file may be");
                if (_store.GetWebmailItem(user, DirKind, path) is not null) throw new WebmailException(409, $"{name} is a folder here");
                using var data = new MemoryStream((int)file.Length);
                await file.CopyToAsync(data, ctx.RequestAborted);
                await PutItemAsync(user, FileKind, path, folder, NameOf(path), data.ToArray());
                added.Add(path);
            }
            // One listing for the answer (size and time as stored), not one per file.
            var stored = _store.ListWebmailItems(user, FileKind, folder).ToDictionary(i => i.Id, StringComparer.Ordinal);
            return Json(new FilesAdded([.. added.Select(path => ToEntry(stored[path]))]), WebmailJson.Default.FilesAdded, 201);
        }));
        app.MapGet("/webmail/api/files/download", HandleData((ctx, _, user) =>
        {
            var path = FolderPath(Query(ctx, "path"));
            var item = _store.GetWebmailItem(user, FileKind, path) ?? throw new WebmailException(404, $"there is no file {path}");
            var h = ctx.Response.Headers;
            h.ContentDisposition = Disposition(false, item.Name);
            h.ContentSecurityPolicy = "default-src 'none'; sandbox";
            return Task.FromResult(Results.Bytes(item.Data ?? [], "application/octet-stream"));
        }));
        app.MapPost("/webmail/api/files/folders", HandleData(async (ctx, _, user) =>
        {
            var path = FolderPath((await Body(ctx, WebmailJson.Default.FilePath)).Path);
            if (path == "/") throw new WebmailException(409, "/ already exists");
            MustBeFolder(user, ParentOf(path));
            if (_store.GetWebmailItem(user, FileKind, path) is not null) throw new WebmailException(409, $"{NameOf(path)} is a file here");
            await PutItemAsync(user, DirKind, path, ParentOf(path), NameOf(path), [], mustBeNew: true);
            return Results.StatusCode(201);
        }));
        app.MapPost("/webmail/api/files/move", HandleData(async (ctx, _, user) =>
        {
            var body = await Body(ctx, WebmailJson.Default.FilePath);
            var from = FolderPath(body.From);
            var to = FolderPath(body.To);
            if (from == "/" || to == "/") throw new WebmailException(400, "the top folder cannot be moved or replaced");
            if (to.StartsWith(from + "/", StringComparison.Ordinal)) throw new WebmailException(400, "a folder cannot move into itself");
            MustBeFolder(user, ParentOf(to));
            if (_store.GetWebmailItem(user, FileKind, to) is not null || _store.GetWebmailItem(user, DirKind, to) is not null)
                throw new WebmailException(409, $"{to} already exists");
            switch (await _store.MoveWebmailItemsAsync(user, from, to, ParentOf(to), NameOf(to)))
            {
                case WebmailResult.NotFound: throw new WebmailException(404, $"there is no {from}");
                case WebmailResult.Exists: throw new WebmailException(409, $"{to} already exists");
            }
            return Results.NoContent();
        }));
        app.MapDelete("/webmail/api/files", HandleData(async (ctx, _, user) =>
        {
            var path = FolderPath(Query(ctx, "path"));
            if (path == "/") throw new WebmailException(400, "the top folder cannot be deleted");
            var result = _store.GetWebmailItem(user, DirKind, path) is not null
                ? await _store.DeleteWebmailItemAsync(user, DirKind, path, withChildren: true)
                : await _store.DeleteWebmailItemAsync(user, FileKind, path, withChildren: false);
            if (result == WebmailResult.NotFound) throw new WebmailException(404, $"there is no {path}");
            return Results.NoContent();
        }));
    }

    private void MustBeFolder(MailUser user, string folder)
    {
        if (folder != "/" && _store.GetWebmailItem(user, DirKind, folder) is null) throw new WebmailException(404, $"there is no folder {folder}");
    }

    /// <summary>A files path: "/" or "/a/b", each name 1-255 characters without control characters, "/", or being "." or "..".</summary>
    internal static string FolderPath(string? path)
    {
        path = (path ?? "").Trim();
        if (path is "" or "/") return "/";
        var names = path.Trim('/').Split('/');
        if (path.Length > 1024 || names.Any(n => n.Length is 0 or > 255 || n is "." or ".." || n.Any(char.IsControl) || n.Trim().Length == 0))
            throw new WebmailException(400, $"\"{path}\" is not a usable path (names of 1 to 255 characters, no control characters, not . or ..)");
        return "/" + string.Join('/', names);
    }

    private static string Child(string folder, string name) => folder == "/" ? "/" + name : folder + "/" + name;
    private static string ParentOf(string path) => path.LastIndexOf('/') is var i and > 0 ? path[..i] : "/";
    private static string NameOf(string path) => path[(path.LastIndexOf('/') + 1)..];

    private static FileEntry ToEntry(WebmailItem i) => new(i.Name, i.Size, TypeOf(i.Name), i.Updated);

    private static string TypeOf(string name) => Path.GetExtension(name).ToLowerInvariant() switch
    {
        ".pdf" => "application/pdf",
        ".png" => "image/png",
        ".jpg" or ".jpeg" => "image/jpeg",
        ".gif" => "image/gif",
        ".txt" => "text/plain",
        ".csv" => "text/csv",
        ".zip" => "application/zip",
        ".doc" or ".docx" => "application/msword",
        ".xls" or ".xlsx" => "application/vnd.ms-excel",
        ".odt" => "application/vnd.oasis.opendocument.text",
        ".ods" => "application/vnd.oasis.opendocument.spreadsheet",
        _ => "application/octet-stream",
    };

    // ---- settings ----

    /// <summary>A call on the address book, notes, files or settings: served where the db unit is active.</summary>
    private RequestDelegate HandleData(Func<HttpContext, WebmailSession, MailUser, Task<IResult>> handler) => Handle(handler, Needs.Db);

    private void MapSettings(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/settings", HandleData((ctx, _, user) => Task.FromResult(Json(LoadSettings(user.Address), WebmailJson.Default.WebmailSettings))));
        app.MapPut("/webmail/api/settings", HandleData(async (ctx, _, user) =>
        {
            var s = CheckSettings(await Body(ctx, WebmailJson.Default.WebmailSettings));
            await PutItemAsync(user, SettingsKind, SettingsId, "", SettingsId, JsonSerializer.SerializeToUtf8Bytes(s, WebmailJson.Default.WebmailSettings));
            return Json(s, WebmailJson.Default.WebmailSettings);
        }));

        // Needs nothing here: the provisioning service takes the change to whichever node journals it.
        app.MapPost("/webmail/api/settings/password", Handle(async (ctx, session, user) =>
        {
            var body = await Body(ctx, WebmailJson.Default.PasswordChange);
            if (string.IsNullOrEmpty(body.Current) || string.IsNullOrEmpty(body.Password)) throw new WebmailException(400, "enter the current and the new password");
            var remote = ctx.Connection.RemoteIpAddress ?? IPAddress.None;
            var check = await _directory.AuthenticateAsync(user.Address, body.Current, remote, ctx.RequestAborted);
            if (check.Outcome == AuthOutcome.Throttled) throw new WebmailException(429, "too many failed attempts from this address; wait a few minutes");
            if (check.Outcome != AuthOutcome.Success) throw new WebmailException(403, "the current password is not right");
            try { MailDirectory.CheckPassword(body.Password); }
            catch (DirectoryException ex) { throw new WebmailException(400, ex.Message); }
            MailboxRecord box;
            try { box = await _provisioning.UpdateMailboxAsync(user.Address, body.Password, null, null, "webmail:" + user.Address); }
            catch (DirectoryException ex) { throw new WebmailException(ex.Kind == DirectoryError.Unavailable ? 503 : 400, ex.Message); }
            session.Password = body.Password;
            session.PasswordHash = box.PasswordHash;
            _sessions.RemoveAllOf(user.Address, keep: session.Id);
            Log.Info("webmail password changed user={0}", user.Address);
            return Results.NoContent();
        }, Needs.Nothing));

        app.MapGet("/webmail/api/settings/vacation", HandleData((ctx, _, user) =>
            Task.FromResult(Json(LoadItem(user.Address, SettingsKind, VacationId, WebmailJson.Default.VacationSettings)
                ?? new VacationSettings { Subject = "", Body = "", Days = 7 }, WebmailJson.Default.VacationSettings))));
        app.MapPut("/webmail/api/settings/vacation", HandleData(async (ctx, session, user) =>
        {
            var v = await Body(ctx, WebmailJson.Default.VacationSettings);
            v.Subject = (v.Subject ?? "").Trim();
            v.Body ??= "";
            v.Days ??= 7;
            if (v.Days is < 1 or > 365) throw new WebmailException(400, "reply again to the same sender after 1 to 365 days");
            if (v.Subject.Length > 200 || v.Subject.Any(char.IsControl) || v.Body.Length > 20_000) throw new WebmailException(400, "the subject is one line up to 200 characters, the text up to 20,000");
            if (v.Enabled && v.Body.Trim().Length == 0) throw new WebmailException(400, "write the text of the automatic reply");
            await ApplySieveAsync(ctx, session, user, v, LoadRules(user.Address));
            await PutItemAsync(user, SettingsKind, VacationId, "", VacationId, JsonSerializer.SerializeToUtf8Bytes(v, WebmailJson.Default.VacationSettings));
            return Json(v, WebmailJson.Default.VacationSettings);
        }));

        app.MapGet("/webmail/api/settings/filters", HandleData((ctx, _, user) =>
            Task.FromResult(Json(new FilterSettings { Script = LoadRules(user.Address) }, WebmailJson.Default.FilterSettings))));
        app.MapPut("/webmail/api/settings/filters", HandleData(async (ctx, session, user) =>
        {
            var rules = (await Body(ctx, WebmailJson.Default.FilterSettings)).Script ?? "";
            if (rules.Trim().Length > 0 && _checkSieve(rules) is { } error) throw new WebmailException(400, "the rules do not parse: " + error);
            await ApplySieveAsync(ctx, session, user, LoadItem(user.Address, SettingsKind, VacationId, WebmailJson.Default.VacationSettings), rules);
            await PutItemAsync(user, SettingsKind, FiltersId, "", FiltersId, Encoding.UTF8.GetBytes(rules));
            return Json(new FilterSettings { Script = rules }, WebmailJson.Default.FilterSettings);
        }));
    }

    private string LoadRules(string address) =>
        _store.Db.GetWebmailItem(address, SettingsKind, FiltersId) is { Data: { } data } ? Encoding.UTF8.GetString(data) : "";

    private static WebmailSettings CheckSettings(WebmailSettings s)
    {
        var display = (s.DisplayName ?? "").Trim();
        if (display.Length > 100 || display.Any(char.IsControl)) throw new WebmailException(400, "the name is one line up to 100 characters");
        var replyTo = (s.ReplyTo ?? "").Trim();
        if (replyTo.Length > 0 && (!MailboxAddress.TryParse(replyTo, out var r) || r.Address.IndexOf('@') <= 0))
            throw new WebmailException(400, $"\"{replyTo}\" is not an e-mail address");
        if ((s.Signature?.Length ?? 0) > 10_000) throw new WebmailException(400, "the signature may be 10,000 characters at most");
        var language = s.Language ?? "en";
        if (language is not ("en" or "es")) throw new WebmailException(400, "the language is en or es");
        var zone = (s.TimeZone ?? "").Trim();
        if (zone.Length > 0 && (zone.Length > 64 || !TimeZoneInfo.TryFindSystemTimeZoneById(zone, out _)))
            throw new WebmailException(400, $"\"{zone}\" is not a time zone (like Europe/Madrid)");
        var pageSize = s.PageSize ?? 50;
        if (pageSize is < 10 or > 200) throw new WebmailException(400, "show 10 to 200 messages per page");
        var remote = s.RemoteImages ?? "ask";
        if (remote is not ("ask" or "always")) throw new WebmailException(400, "remote images are ask or always");
        return new WebmailSettings
        {
            DisplayName = display, ReplyTo = replyTo, Signature = s.Signature ?? "", Language = language, TimeZone = zone,
            PageSize = pageSize, Threads = s.Threads ?? false, RemoteImages = remote,
        };
    }

    // ---- the Sieve script behind vacation and filters ----

    /// <summary>The leading require commands (and comments) of a script, which must stay first.</summary>
    [GeneratedRegex("""\G(?:\s+|#[^\n]*(?:\n|$)|/\*.*?\*/|require\s*(?:\[[^\]]*\]|"(?:[^"\\]|\\.)*")\s*;)""", RegexOptions.Singleline)]
    private static partial Regex LeadingRequires();

    /// <summary>
    /// The webmail's script: the user's requires, then the vacation reply (first, so a rule that
    /// stops cannot skip it), then the user's rules. Null when there is nothing to run.
    /// </summary>
    internal static string? ComposeScript(VacationSettings? vacation, string rules)
    {
        var on = vacation is { Enabled: true };
        if (!on && rules.Trim().Length == 0) return null;
        var at = 0;
        for (var m = LeadingRequires().Match(rules); m.Success && m.Length > 0; m = LeadingRequires().Match(rules, at)) at = m.Index + m.Length;
        var script = new StringBuilder("# Written by the webmail from the vacation and filter settings: change them there.\r\n");
        if (on) script.Append("require [\"vacation\"];\r\n");
        script.Append(rules[..at]);
        if (at > 0 && !rules[..at].EndsWith('\n')) script.Append("\r\n");
        if (on)
            script.Append($"vacation :days {vacation!.Days ?? 7}{(vacation.Subject is { Length: > 0 } subject ? " :subject " + SieveString(subject) : "")} {SieveString(vacation.Body ?? "")};\r\n");
        script.Append(rules[at..]);
        return script.ToString();
    }

    private static string SieveString(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    /// <summary>
    /// Writes the script vacation and filters make (or takes it away when they make none). It
    /// belongs to the mailbox's partition: in a pair where that is active on the other node than
    /// db, the script is handed to the other node (the internal call below).
    /// </summary>
    private async Task ApplySieveAsync(HttpContext ctx, WebmailSession session, MailUser user, VacationSettings? vacation, string rules)
    {
        var script = ComposeScript(vacation, rules);
        if (script is not null && _checkSieve(script) is { } error) throw new WebmailException(400, "these settings make a script that does not parse: " + error);
        if (_store.IsServedHere(user))
        {
            await WriteSieveAsync(user, script);
            return;
        }
        using var request = new HttpRequestMessage(HttpMethod.Put, "http://peer" + InternalSievePath)
        {
            Content = new StringContent(JsonSerializer.Serialize(new FilterSettings { Script = script }, WebmailJson.Default.FilterSettings), Encoding.UTF8, "application/json"),
        };
        using var response = await _forwarding.SendAsync(ctx, session, user, request, ctx.RequestAborted);
        if (response.IsSuccessStatusCode) return;
        var detail = "the other node did not take the script";
        try
        {
            using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync(ctx.RequestAborted));
            if (problem.RootElement.TryGetProperty("detail", out var d) && d.GetString() is { Length: > 0 } text) detail = text;
        }
        catch (JsonException) { }
        throw new WebmailException((int)response.StatusCode, detail);
    }

    private const string InternalSievePath = "/webmail/api/internal/sieve";

    /// <summary>The call the db node makes of the mailbox's node in a pair; refused to anything but a forwarded request.</summary>
    private void MapInternal(IEndpointRouteBuilder app) =>
        app.MapPut(InternalSievePath, Handle(async (ctx, _, user) =>
        {
            if (_forwarding.ForwardedSessionId(ctx) is null) throw new WebmailException(404, "no such call");
            var script = (await Body(ctx, WebmailJson.Default.FilterSettings)).Script;
            if (script is not null && _checkSieve(script) is { } error) throw new WebmailException(400, "these settings make a script that does not parse: " + error);
            await WriteSieveAsync(user, script);
            return Results.NoContent();
        }));

    private async Task WriteSieveAsync(MailUser user, string? script)
    {
        if (script is null)
        {
            if (_store.GetActiveSieveScript(user) is { Name: SieveScriptName }) await _store.SetActiveSieveScriptAsync(user, "");
            return;
        }
        var put = await _store.PutSieveScriptAsync(user, SieveScriptName, script);
        if (put != SieveResult.Ok) throw new WebmailException(400, put == SieveResult.TooLarge ? "the rules are longer than a script may be" : "you have as many Sieve scripts as allowed; delete one (ManageSieve) first");
        await _store.SetActiveSieveScriptAsync(user, SieveScriptName);
    }
}
