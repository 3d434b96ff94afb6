using Appliance.Web.Webmail;

namespace Appliance.Tests.Web.Webmail;

/// <summary>The pure pieces of the webmail: vCard reading and writing, and the Sieve script its settings make.</summary>
public class VCardAndSieveTests
{
    [Fact]
    public void A_written_address_book_reads_back_the_same()
    {
        var contacts = new[]
        {
            new Contact { Name = "Núñez, José; \"Pepe\"", Emails = ["jose@example.test", "pepe@example.test"], Phone = "+34 600", Notes = "line 1\nline 2 \\ end", Groups = ["Team, Madrid", "Friends"] },
            new Contact { Name = new string('x', 200), Emails = [], Groups = [] },
        };
        var text = VCard.Write(contacts);
        Assert.All(text.Split("\r\n"), line => Assert.True(System.Text.Encoding.UTF8.GetByteCount(line) <= 75, line));
        var back = VCard.Read(text);
        Assert.Equal(2, back.Count);
        Assert.Equal(contacts[0].Name, back[0].Name);
        Assert.Equal(contacts[0].Emails!, back[0].Emails!);
        Assert.Equal("+34 600", back[0].Phone);
        Assert.Equal("line 1\nline 2 \\ end", back[0].Notes);
        Assert.Equal(["Team, Madrid", "Friends"], back[0].Groups!);
        Assert.Equal(contacts[1].Name, back[1].Name);
    }

    [Fact]
    public void Other_address_books_cards_are_read_version_2_1_quoted_printable_and_4_0()
    {
        var text = """
            BEGIN:VCARD
            VERSION:2.1
            N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Mu=C3=B1oz;Ana;;;
            EMAIL;INTERNET;PREF:ana@example.test
            TEL;CELL:+34 611
            END:VCARD
            BEGIN:VCARD
            VERSION:4.0
            FN:Li Wei
            item1.EMAIL;TYPE=work:mailto:li@example.test
            CATEGORIES:Clients,VIP
            END:VCARD
            garbage outside any card
            BEGIN:VCARD
            """;
        var cards = VCard.Read(text);
        Assert.Equal(2, cards.Count);
        Assert.Equal("Ana Muñoz", cards[0].Name);
        Assert.Equal(["ana@example.test"], cards[0].Emails!);
        Assert.Equal("+34 611", cards[0].Phone);
        Assert.Equal("Li Wei", cards[1].Name);
        Assert.Equal(["li@example.test"], cards[1].Emails!);
        Assert.Equal(["Clients", "VIP"], cards[1].Groups!);
    }

    [Fact]
    public void The_script_puts_vacation_after_the_users_requires_and_before_the_rules()
    {
        var rules = "# my rules\r\nrequire [\"fileinto\"];\r\nrequire \"mailbox\";\r\nif header :contains \"subject\" \"x\" { fileinto \"X\"; stop; }\r\n";
        var script = WebmailEndpoints.ComposeScript(new VacationSettings { Enabled = true, Subject = "Away \"now\"", Body = "Back \\ soon", Days = 3 }, rules)!;
        Assert.Equal(
            "# Written by the webmail from the vacation and filter settings: change them there.\r\n"
            + "require [\"vacation\"];\r\n"
            + "# my rules\r\nrequire [\"fileinto\"];\r\nrequire \"mailbox\";\r\n"
            + "vacation :days 3 :subject \"Away \\\"now\\\"\" \"Back \\\\ soon\";\r\n"
            + "if header :contains \"subject\" \"x\" { fileinto \"X\"; stop; }\r\n", script);
        Assert.Null(Appliance.ManageSieve.SieveChecker.Parser(64 * 1024).Check(script));

        Assert.Null(WebmailEndpoints.ComposeScript(new VacationSettings { Enabled = false }, "  \n"));
        Assert.Null(WebmailEndpoints.ComposeScript(null, ""));
        var rulesOnly = WebmailEndpoints.ComposeScript(null, rules)!;
        Assert.DoesNotContain("require [\"vacation\"]", rulesOnly);
        Assert.DoesNotContain("vacation :days", rulesOnly);
        Assert.Null(Appliance.ManageSieve.SieveChecker.Parser(64 * 1024).Check(rulesOnly));
    }
}
