using System.Net;
using Appliance.Directory;
using SmtpServer;
using SmtpServer.Authentication;
using SmtpServer.Protocol;

namespace Appliance.Smtp;

/// <summary>
/// AUTH PLAIN/LOGIN on submission (RFC 4954) against the directory, with its login throttle.
/// Only over TLS (538 5.7.11 otherwise, RFC 4954 §6), except from loopback in dev mode; the
/// engine does not even offer AUTH before STARTTLS outside dev mode. A failure is the engine's
/// 535 5.7.8.
/// </summary>
internal sealed class SmtpAuthenticator(MailDirectory directory, bool devMode) : IUserAuthenticator
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");

    public async Task<bool> AuthenticateAsync(ISessionContext context, string user, string password, CancellationToken cancellationToken)
    {
        var state = SmtpSessionState.Of(context);
        var remote = SmtpSessionState.Remote(context)?.Address ?? IPAddress.None;
        if (context.Pipe is not { IsSecure: true } && !(devMode && IPAddress.IsLoopback(remote)))
        {
            Log.Info("smtp auth refused {0}: no TLS", state.Describe(context));
            throw new SmtpResponseException(new SmtpResponse((SmtpReplyCode)538, "5.7.11 Encryption required for requested authentication mechanism"));
        }
        var result = await directory.AuthenticateAsync(user, password, remote, cancellationToken);
        if (result.Outcome != AuthOutcome.Success)
        {
            Log.Info("smtp auth failed {0} user={1} reason={2}", state.Describe(context), user, result.Outcome);
            return false;
        }
        state.User = result.User;
        Log.Info("smtp auth {0}", state.Describe(context));
        return true;
    }
}
