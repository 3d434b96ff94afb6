using System.Net.Sockets;

namespace Appliance.Tests.Relay;

/// <summary>The accept loop of the test servers (TestMx, TestDns over TCP).</summary>
internal static class TestListener
{
    /// <summary>
    /// Accepts until <paramref name="stop"/>; each connection goes to <paramref name="accepted"/>
    /// under <paramref name="gate"/>, or is closed when the server is stopping by then (the
    /// server's dispose takes the same lock, so no session starts after it looked).
    /// </summary>
    public static async Task AcceptAsync(TcpListener listener, CancellationTokenSource stop, object gate, Action<Socket> accepted)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(stop.Token);
            }
            // InvalidOperationException: stopped before the first accept began (disposed at once).
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
            {
                if (stop.IsCancellationRequested) return;
                continue;
            }
            lock (gate)
            {
                if (stop.IsCancellationRequested)
                {
                    socket.Dispose();
                    return;
                }
                accepted(socket);
            }
        }
    }
}
