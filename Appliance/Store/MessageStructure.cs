namespace Appliance.Store;

// Placeholder replaced by the MessageStructure branch.
public sealed record MessageStructure(string Envelope, string BodyStructure)
{
    public static MessageStructure Parse(Stream s) => new("NIL", "NIL");
}
