/**
 * Microsoft 365 error knowledge: what an Exchange Online SMTP reply, a Microsoft Graph error or an
 * Entra ID (AADSTS) sign-in error means, in one sentence, and what the admin should do, in one more.
 *
 * Used for badmail reasons (.BDR), delivery logs, NDRs and the console. `routeBroken` is true when
 * the reply says the *route* is broken (credentials refused, SMTP AUTH disabled, continuous-error
 * throttle, connector attribution, banned IP…) rather than this message: the delivery manager then
 * parks the upstream so messages wait in the queue until an admin fixes it, instead of bouncing
 * hundreds of messages or retrying into a longer Microsoft block.
 *
 * Pure: no I/O. Returns undefined when nothing specific is known (the caller keeps its generic text).
 * Sources: ../shared/research/m365.md §1–§6 (Microsoft's NDR pages, the OAuth for SMTP doc,
 * continuous-error throttling, Graph sendMail and throttling pages, Entra ID error codes).
 */

export interface M365Explanation {
  /** One sentence: what the reply means. */
  meaning: string;
  /** One sentence: what to do about it. */
  fix: string;
  /** The route (credentials, tenant set-up, sending IP) is broken, not the message: park the upstream. */
  routeBroken: boolean;
  /** Short name of the matched entry, e.g. '5.7.60', 'AADSTS7000215', 'ErrorSendAsDenied'. */
  id: string;
}

interface Entry {
  id: string;
  /** Enhanced status codes this entry covers: exact ('5.7.60') or a range ('5.7.606-649'). */
  enhanced?: string[];
  /** Text that identifies the entry (tested case-insensitively against the reply/error text). */
  text?: RegExp;
  /** When both are given, both must match. */
  both?: boolean;
  meaning: string;
  fix: string;
  routeBroken: boolean;
}

const SEND_AS_FIX = 'Grant the upstream mailbox Send As on that address (Add-RecipientPermission ADDRESS -Trustee MAILBOX -AccessRights SendAs), make the device use the mailbox\'s own address, use a sender rule with mode rewrite, or deliver through a connector.';

// Order matters: the first entry that matches wins, so specific text matches come before bare codes.
const ENTRIES: Entry[] = [
  // ---- Entra ID sign-in (token endpoint) errors ----
  { id: 'AADSTS7000215', text: /AADSTS7000215/, meaning: 'The client secret sent to Entra ID is wrong (often the secret ID was copied instead of its value).', fix: 'Create a new client secret in the app registration (Certificates & secrets) and put its Value in oauth.clientSecret.', routeBroken: true },
  { id: 'AADSTS7000222', text: /AADSTS7000222/, meaning: 'The client secret has expired.', fix: 'Create a new client secret in the app registration, update oauth.clientSecret, or switch to a certificate (oauth.certificate), which you can give a longer life.', routeBroken: true },
  { id: 'AADSTS700027', text: /AADSTS700027|AADSTS700024|AADSTS50012/, meaning: 'Entra ID refused the certificate assertion: the certificate is not uploaded to this app registration, its thumbprint does not match, or the clock of this machine is off.', fix: 'Upload the certificate (public part) to the app registration under Certificates & secrets, check oauth.thumbprint, and make sure this machine\'s clock is right.', routeBroken: true },
  { id: 'AADSTS700016', text: /AADSTS700016/, meaning: 'No application with this client ID exists in the tenant.', fix: 'Check oauth.clientId (Application (client) ID on the app\'s Overview page) and oauth.tenant.', routeBroken: true },
  { id: 'AADSTS90002', text: /AADSTS90002|AADSTS900023/, meaning: 'The tenant named in oauth.tenant does not exist or is spelled wrong.', fix: 'Use the Directory (tenant) ID from the app\'s Overview page, or the tenant\'s onmicrosoft.com domain.', routeBroken: true },
  { id: 'AADSTS65001', text: /AADSTS65001|AADSTS650057/, meaning: 'The permission this app asks for has not been granted (admin consent is missing).', fix: 'In the app registration, API permissions, click "Grant admin consent" for the permission the docs name (SMTP.SendAsApp, Mail.Send or SMTP.Send).', routeBroken: true },
  { id: 'AADSTS70011', text: /AADSTS70011|AADSTS1002012|invalid_scope/, meaning: 'The scope asked for is not valid for this sign-in.', fix: 'Leave oauth.scope unset (smarthost picks https://outlook.office365.com/.default for app-only SMTP, https://graph.microsoft.com/.default for Graph).', routeBroken: true },
  { id: 'AADSTS7000218', text: /AADSTS7000218/, meaning: 'The app registration does not allow public client flows, so the device-code sign-in was refused.', fix: 'In the app registration, Authentication, set "Allow public client flows" to Yes, then run smarthost m365 login again.', routeBroken: true },
  { id: 'AADSTS50076', text: /AADSTS50076|AADSTS50079|AADSTS50158/, meaning: 'Multi-factor authentication is now required for the signed-in account, and the stored sign-in cannot satisfy it.', fix: 'Run smarthost m365 login again and complete MFA, or switch the upstream to app-only (oauth.mode app).', routeBroken: true },
  { id: 'AADSTS53003', text: /AADSTS53003|AADSTS53000|AADSTS530032/, meaning: 'A Conditional Access policy blocked the sign-in.', fix: 'Ask the Entra ID admin to exclude this app or account from the policy, or allow this machine\'s location.', routeBroken: true },
  { id: 'AADSTS700082', text: /AADSTS700082|AADSTS70043|AADSTS700084/, meaning: 'The stored sign-in (refresh token) has expired, for inactivity or a sign-in frequency policy.', fix: 'Run smarthost m365 login --upstream NAME again to sign in once more; messages wait in the queue meanwhile.', routeBroken: true },
  { id: 'AADSTS50173', text: /AADSTS50173|AADSTS50133|AADSTS50089/, meaning: 'The stored sign-in was revoked, usually because the account\'s password was changed or its sessions were revoked.', fix: 'Run smarthost m365 login --upstream NAME again; messages wait in the queue meanwhile.', routeBroken: true },
  { id: 'AADSTS50057', text: /AADSTS50057|AADSTS50034|AADSTS50053/, meaning: 'The signed-in account is disabled, locked or no longer exists.', fix: 'Re-enable the account or sign in with another one (smarthost m365 login).', routeBroken: true },
  { id: 'AADSTS70019', text: /AADSTS70019|expired_token/, meaning: 'The device code expired before anyone signed in.', fix: 'Run smarthost m365 login again and finish the sign-in within 15 minutes.', routeBroken: true },
  { id: 'AADSTS70000', text: /AADSTS70000|AADSTS70008|invalid_grant/, meaning: 'Entra ID no longer accepts the stored grant (it was revoked or has expired).', fix: 'Run smarthost m365 login --upstream NAME again (delegated), or check the app\'s secret or certificate (app-only).', routeBroken: true },
  { id: 'invalid_client', text: /invalid_client|AADSTS7000\d{3}/, meaning: 'Entra ID refused the app\'s credentials.', fix: 'Check oauth.clientId, oauth.clientSecret or the certificate against the app registration.', routeBroken: true },

  // ---- Microsoft Graph errors ----
  { id: 'ErrorSendAsDenied', text: /ErrorSendAsDenied|SendAsDenied/, meaning: 'The mailbox is not allowed to send as the From address of this message.', fix: SEND_AS_FIX, routeBroken: false },
  { id: 'MailboxNotEnabledForRESTAPI', text: /MailboxNotEnabledForRESTAPI|MailboxNotSupportedForRESTAPI/, meaning: 'The mailbox is not an Exchange Online mailbox Graph can use (no licence, on-premises, or not provisioned yet).', fix: 'Give the account an Exchange Online licence (or use a shared mailbox in Exchange Online) and check the mailbox address in the upstream URL.', routeBroken: true },
  { id: 'AppOnlyAccessPolicy', text: /AppOnly AccessPolicy|Access to OData is disabled/, meaning: 'An Exchange application access policy or RBAC scope excludes this mailbox from the app.', fix: 'Add the mailbox to the group used by the access policy or management scope, or use a mailbox inside the scope.', routeBroken: true },
  { id: 'ErrorAccessDenied', text: /ErrorAccessDenied|Authorization_RequestDenied|Access is denied/, meaning: 'The app lacks the Graph permission for this call (Mail.Send, or Mail.ReadWrite for large messages), or the mailbox is outside its RBAC scope.', fix: 'Grant the application permission Mail.Send (and Mail.ReadWrite for messages over 4 MB) with admin consent, or add the mailbox to the app\'s management scope.', routeBroken: true },
  { id: 'InvalidAuthenticationToken', text: /InvalidAuthenticationToken|CompactToken|Lifetime validation failed/, meaning: 'Graph refused the access token (wrong audience, expired or malformed).', fix: 'Check that the upstream uses the Graph scope (leave oauth.scope unset) and the right tenant; smarthost gets a new token on the next try.', routeBroken: true },
  { id: 'ErrorInvalidUser', text: /ErrorInvalidUser|ResourceNotFound|Request_ResourceNotFound|ErrorNonExistentMailbox/, meaning: 'Graph does not know the mailbox in the upstream URL.', fix: 'Check the mailbox address (graph://TENANT/MAILBOX) and that it exists in this tenant.', routeBroken: true },
  { id: 'ErrorQuotaExceeded', text: /ErrorQuotaExceeded/, meaning: 'The sending mailbox is full, so Graph cannot save the message in Drafts and Sent Items.', fix: 'Empty the mailbox\'s Sent Items (MIME sends always keep a copy there) or raise its quota.', routeBroken: true },
  { id: 'ErrorMessageSubmissionBlocked', text: /ErrorMessageSubmissionBlocked|ErrorAccountSuspend/, meaning: 'Exchange Online has blocked this mailbox from sending (often after outbound spam).', fix: 'Release the account in Microsoft Defender (Restricted entities) once it is cleaned up.', routeBroken: true },
  { id: 'ErrorMimeContentInvalidBase64String', text: /ErrorMimeContentInvalidBase64String|ErrorMimeContentConversionFailed|ErrorMimeContentInvalid/, meaning: 'Graph could not read the MIME content of this message.', fix: 'Check the message with smarthost queue show; a device that produces broken MIME may need a firmware update.', routeBroken: false },
  { id: 'ErrorMessageSizeExceeded', text: /ErrorMessageSizeExceeded|RequestBodyTooLarge|maximum request length/, meaning: 'The message is larger than Graph accepts in one request or than the mailbox\'s MaxSendSize.', fix: 'Let smarthost use the upload path (graph.largeMessages: upload, needs Mail.ReadWrite), raise MaxSendSize, or send a smaller message.', routeBroken: false },
  { id: 'ErrorInvalidRecipients', text: /ErrorInvalidRecipients|ErrorInvalidInternetHeader/, meaning: 'Graph refused a recipient address or header of this message.', fix: 'Check the recipient addresses of the message.', routeBroken: false },
  { id: 'ApplicationThrottled', text: /ApplicationThrottled|TooManyRequests|MailboxConcurrency|ErrorServerBusy/, meaning: 'Microsoft Graph is throttling this app or mailbox (10,000 requests per 10 minutes, 4 at a time).', fix: 'Nothing: smarthost waits as long as Retry-After says; lower maxConnections to 4 or less if it keeps happening.', routeBroken: false },

  // ---- Exchange Online SMTP replies: send as ----
  { id: '5.7.60', enhanced: ['5.7.60'], meaning: 'The mailbox smarthost signs in with is not allowed to send as this message\'s From address.', fix: SEND_AS_FIX, routeBroken: false },
  { id: '5.7.1-sendas', enhanced: ['5.7.1', '5.2.0'], text: /send as|SendAsDenied|on behalf/i, both: true, meaning: 'The mailbox smarthost signs in with is not allowed to send as (or on behalf of) this message\'s From address.', fix: SEND_AS_FIX, routeBroken: false },
  // ---- authentication and SMTP AUTH ----
  { id: '5.7.139-disabled', enhanced: ['5.7.139'], text: /SmtpClientAuthentication is disabled/i, both: true, meaning: 'SMTP AUTH is turned off for the tenant or for this mailbox.', fix: 'Enable it for the mailbox: Set-CASMailbox MAILBOX -SmtpClientAuthenticationDisabled $false (or the tenant-wide Set-TransportConfig), or use the Graph or connector upstream instead.', routeBroken: true },
  { id: '5.7.139-policy', enhanced: ['5.7.139'], text: /security defaults|did not meet the criteria|Conditional Access/i, both: true, meaning: 'Security defaults or a Conditional Access policy block this sign-in on SMTP.', fix: 'Move the upstream to OAuth (auth: xoauth2, app-only) or exclude the account from the policy.', routeBroken: true },
  { id: '5.7.139', enhanced: ['5.7.139'], meaning: 'Exchange Online refused the sign-in on SMTP AUTH (disabled for the tenant or mailbox, or blocked by policy).', fix: 'Check Set-CASMailbox MAILBOX -SmtpClientAuthenticationDisabled $false and Conditional Access, or switch to auth: xoauth2.', routeBroken: true },
  { id: '5.7.30', enhanced: ['5.7.30'], meaning: 'Basic authentication (username and password) is no longer accepted for SMTP at this tenant.', fix: 'Move the upstream to OAuth: set auth: xoauth2 with an oauth: section (see docs/microsoft-365.md), or use the Graph or connector upstream.', routeBroken: true },
  { id: '5.7.3', enhanced: ['5.7.3'], meaning: 'Exchange Online refused the credentials: a wrong password, or for OAuth a token without SMTP.SendAsApp, no Exchange service principal, no FullAccess/RBAC grant on the mailbox, or the wrong ObjectId used in New-ServicePrincipal.', fix: 'For OAuth check each step in docs/microsoft-365.md (permission, admin consent, New-ServicePrincipal with the Enterprise Application\'s object ID, Add-MailboxPermission FullAccess or the Application SMTP.SendAsApp role); for basic auth check the password.', routeBroken: true },
  { id: '5.7.57', enhanced: ['5.7.57'], meaning: 'smtp.office365.com refused mail from a client that did not authenticate.', fix: 'Configure the upstream\'s credentials (auth: xoauth2 or basic), or deliver without authentication through a connector upstream to the tenant\'s MX endpoint.', routeBroken: true },
  { id: '4.7.66', enhanced: ['4.7.66'], meaning: 'Exchange Online refused TLS 1.0/1.1 on this endpoint.', fix: 'Use TLS 1.2 (smarthost does by default); only legacy devices need smtp-legacy.office365.com.', routeBroken: true },
  { id: '5.5.127', text: /Token will expire soon/i, meaning: 'The access token was too close to expiry when presented.', fix: 'Nothing to change: smarthost renews tokens earlier on the next try.', routeBroken: false },
  // ---- continuous-error throttling of SMTP AUTH ----
  { id: '5.2.251', enhanced: ['5.2.251'], meaning: 'Microsoft has blocked this mailbox from SMTP AUTH for a while because earlier messages kept failing with "mailbox full".', fix: 'Free space in the sending mailbox; the block lifts by itself after a time Microsoft chooses (support cannot lift it).', routeBroken: true },
  { id: '5.2.252', enhanced: ['5.2.252'], meaning: 'Microsoft has blocked this mailbox from SMTP AUTH for a while because earlier messages kept failing with "send as denied".', fix: `Fix the From addresses first (sender rules, Send As grants): ${SEND_AS_FIX} The block then lifts by itself.`, routeBroken: true },
  { id: '5.2.253', enhanced: ['5.2.253'], meaning: 'Microsoft has blocked this mailbox from SMTP AUTH for a while because earlier messages kept failing with "invalid licence".', fix: 'Give the sending mailbox an Exchange Online licence; the block lifts by itself afterwards.', routeBroken: true },
  { id: '5.2.254', enhanced: ['5.2.254'], meaning: 'Microsoft has blocked this mailbox from SMTP AUTH for a while because earlier messages kept exceeding the recipient limit.', fix: 'Set maxRecipientsPerMessage: 500 on the upstream so smarthost splits large messages; the block lifts by itself.', routeBroken: true },
  { id: '5.2.255', enhanced: ['5.2.255'], meaning: 'Microsoft has blocked this mailbox from SMTP AUTH for a while because earlier messages kept having invalid recipients.', fix: 'Fix the recipient lists of the sending devices; the block lifts by itself.', routeBroken: true },
  // ---- connector, direct send, sending IP ----
  { id: '5.7.64', enhanced: ['5.7.64'], meaning: 'The tenant\'s inbound connector no longer recognises this relay (its public IP or certificate does not match).', fix: 'Update the inbound connector in the Exchange admin center (Mail flow, Connectors) with the current public IP or certificate name.', routeBroken: true },
  { id: '5.7.68', enhanced: ['5.7.68'], meaning: 'The tenant rejects direct send (RejectDirectSend is on): anonymous mail from its own domains is refused.', fix: 'Create an inbound connector for this relay (IP or certificate, see docs/microsoft-365.md), or use the SMTP AUTH or Graph upstream.', routeBroken: true },
  { id: '5.7.708', enhanced: ['5.7.708'], meaning: 'Microsoft refuses traffic from this IP, which it treats as low reputation (typical of new or trial tenants).', fix: 'Send through SMTP AUTH or Graph instead, or ask Microsoft support for an exception once the tenant has paid licences.', routeBroken: true },
  { id: '5.7.705', enhanced: ['5.7.705', '5.7.700-704', '5.7.706-707', '5.7.709-749'], meaning: 'The tenant has been blocked for sending too much spam or bulk mail.', fix: 'Find and clean the compromised account or rogue connector, then contact Microsoft support.', routeBroken: true },
  { id: '5.7.750', enhanced: ['5.7.750'], meaning: 'The tenant is blocked from sending from domains it has not registered and verified.', fix: 'Add and verify every sending domain in the Microsoft 365 admin center, or use a certificate-based connector.', routeBroken: true },
  { id: '5.7.606-649', enhanced: ['5.7.606-649'], meaning: 'The public IP this relay sends from is on Microsoft\'s block list.', fix: 'Delist the IP at https://sender.office.com and find out why it was listed.', routeBroken: true },
  { id: '5.7.511', enhanced: ['5.7.511'], meaning: 'The sending IP is banned by Microsoft.', fix: 'Email delist@messaging.microsoft.com with the full reply text.', routeBroken: true },
  { id: '5.7.501-503', enhanced: ['5.7.501-503'], meaning: 'The sending account is banned for spam.', fix: 'Clean up the account (reset its credentials), then contact Microsoft support.', routeBroken: true },
  { id: '5.1.8', enhanced: ['5.1.8'], meaning: 'The sending mailbox is blocked for outbound spam (restricted user).', fix: 'Release it in Microsoft Defender (Restricted entities) after checking it is not compromised.', routeBroken: true },
  { id: '4.4.62', enhanced: ['4.4.62'], meaning: 'The relay delivers to an old or wrong Office 365 host for this tenant.', fix: 'Use the tenant\'s current MX endpoint (connector.host, or leave it unset to look it up).', routeBroken: true },
  // ---- quotas and throttling (per mailbox / app / tenant: src/m365/quota.ts holds the messages, never bounces) ----
  { id: 'SubmissionQuotaExceeded', text: /SubmissionQuotaExceeded/i, meaning: 'The sending mailbox is over Microsoft\'s quota of 10,000 recipients per 24 hours (SubmissionQuotaExceeded); it clears by itself as the 24-hour window moves on.', fix: 'Nothing to fix at once: smarthost holds every message of this mailbox (none is bounced) and tries again every hour. If it recurs, spread devices over more mailboxes and check for a compromised device.', routeBroken: false },
  { id: '4.3.2-connections', enhanced: ['4.3.2'], text: /ClientSubmit|sender thread limit|Concurrent connections/i, both: true, meaning: 'More than 3 simultaneous SMTP AUTH connections use this mailbox (all devices and relays together).', fix: 'Nothing: smarthost waits a few seconds; it keeps its own connections to the mailbox at 3 or fewer. If other devices sign in as the same mailbox, give them their own mailbox.', routeBroken: false },
  { id: '5.7.233', enhanced: ['5.7.233', '5.7.232'], meaning: 'The tenant is over its daily limit of external recipients (the tenant external recipient rate limit; 5.7.232 for a trial tenant).', fix: 'Nothing at once: smarthost holds external recipients of this tenant (internal ones still go) and tries again every hour. Watch EAC, Reports, Mail flow, Tenant Outbound External Recipients; more licences raise the limit.', routeBroken: false },
  { id: '5.2.2-quota', enhanced: ['5.2.2', '5.1.90'], text: /quota|limit/i, both: true, meaning: 'The sending mailbox has reached Microsoft\'s sending limit (10,000 recipients per day or 30 messages per minute).', fix: 'Wait for the 24-hour window to pass: smarthost holds the mailbox\'s messages (none is bounced); check for a compromised device.', routeBroken: false },
  { id: '4.7.500-699', enhanced: ['4.7.500-699'], meaning: 'Microsoft is throttling or greylisting this sender or sending IP for now (typical of a new or changed IP).', fix: 'Nothing: smarthost backs off for the mailbox (1, 2, 4… minutes, at most an hour); a connector for this relay and not sending from onmicrosoft.com addresses help.', routeBroken: false },
  { id: '4.7.850-899', enhanced: ['4.7.850-899'], meaning: 'Microsoft is refusing this IP for now because its traffic looks suspicious.', fix: 'Nothing: smarthost retries; check the relay is not sending spam.', routeBroken: false },
  { id: '4.3.2', enhanced: ['4.3.2'], meaning: 'The recipient\'s mailbox is busy (too many messages arriving at once).', fix: 'Nothing: smarthost retries later.', routeBroken: false },
  { id: '4.5.3', enhanced: ['4.5.3', '5.5.3'], meaning: 'The message has more recipients than Exchange Online takes in one submission.', fix: 'Set maxRecipientsPerMessage: 500 on the upstream so smarthost splits it.', routeBroken: false },
  { id: '5.2.121-122', enhanced: ['5.2.121', '5.2.122'], meaning: 'A recipient is receiving more mail per hour than Exchange Online allows.', fix: 'Nothing for this message but to retry later; slow down the device that sends to that recipient.', routeBroken: false },
  // ---- message content ----
  { id: '5.6.11', enhanced: ['5.6.11'], meaning: 'The message contains bare line feeds (LF without CR), which Exchange Online refuses.', fix: 'Keep limits.bareLineEndings on normalize (the default) so smarthost repairs such messages before sending.', routeBroken: false },
  { id: '5.3.4', enhanced: ['5.3.4', '5.2.3'], meaning: 'The message is larger than the mailbox or organisation allows (35 MB by default, at most 150 MB).', fix: 'Raise MaxSendSize/MaxReceiveSize in Exchange Online or send a smaller message; set limits.maxMessageSize to match.', routeBroken: false },
  { id: '5.7.512', enhanced: ['5.7.512'], meaning: 'The message has no valid From header.', fix: 'Configure the device to set a From address, or use a sender rule with mode rewrite.', routeBroken: false },
  { id: '5.7.509', enhanced: ['5.7.509'], meaning: 'The message fails DMARC for its From domain.', fix: 'Add this relay to the domain\'s SPF record or send through Microsoft 365 so it is DKIM-signed.', routeBroken: false },
  { id: '5.1.1', enhanced: ['5.1.1', '5.1.10', '5.4.1'], meaning: 'The recipient address does not exist in the receiving organisation.', fix: 'Check the recipient address configured on the device.', routeBroken: false },
  { id: '5.7.1-relay', enhanced: ['5.7.1'], text: /unable to relay|relay access denied/i, both: true, meaning: 'The receiving host will not relay to this recipient without authentication (direct send reaches only recipients inside the tenant).', fix: 'For external recipients use the SMTP AUTH or Graph upstream, or a connector authenticated by IP or certificate.', routeBroken: false },
  { id: '5.7.1', enhanced: ['5.7.1'], meaning: 'The receiving side refused this message by policy (restricted distribution list, transport rule or sender restrictions).', fix: 'Read the rest of the reply; the recipient\'s admin may need to allow this sender.', routeBroken: false },
];

const ENHANCED_IN_TEXT = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/;

/** Explains a Microsoft 365 reply or error. replyCode: SMTP reply code or HTTP status (0 when none). */
export function explainM365(replyCode: number, enhanced: string | undefined, text: string): M365Explanation | undefined {
  const status = enhanced ?? ENHANCED_IN_TEXT.exec(text ?? '')?.[0];
  for (const entry of ENTRIES) {
    const codeHit = entry.enhanced ? status !== undefined && entry.enhanced.some((pattern) => statusMatches(status, pattern)) : undefined;
    const textHit = entry.text ? entry.text.test(text ?? '') : undefined;
    const hit = entry.both ? codeHit === true && textHit === true : codeHit === true || textHit === true;
    if (hit) return { meaning: entry.meaning, fix: entry.fix, routeBroken: entry.routeBroken, id: entry.id };
  }
  // Graph answers without an error code we know: classify by HTTP status.
  if (replyCode === 429 || replyCode === 503) return { id: `HTTP ${replyCode}`, meaning: 'Microsoft is busy or throttling this app and asked us to wait.', fix: 'Nothing: smarthost waits as long as Retry-After says.', routeBroken: false };
  if (replyCode === 401) return { id: 'HTTP 401', meaning: 'Microsoft refused the access token.', fix: 'Check the app registration, tenant and scope (docs/microsoft-365.md).', routeBroken: true };
  return undefined;
}

/** '5.7.608' matches '5.7.606-649'; '5.7.60' matches only '5.7.60' (not '5.7.608'). */
function statusMatches(status: string, pattern: string): boolean {
  const dash = pattern.indexOf('-');
  if (dash < 0) return status === pattern;
  const prefix = pattern.slice(0, pattern.lastIndexOf('.') + 1);
  if (!status.startsWith(prefix)) return false;
  const n = Number(status.slice(prefix.length));
  const lo = Number(pattern.slice(prefix.length, dash));
  const hi = Number(pattern.slice(dash + 1));
  return n >= lo && n <= hi;
}

/** Formats an explanation as the two plain sentences used in .BDR files and logs. */
export function formatExplanation(e: M365Explanation): string {
  return `What it means: ${e.meaning} What to do: ${e.fix}`;
}
