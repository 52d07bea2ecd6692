// Package zoho is zohook's client for the Zoho CRM v8 and Zoho Books v3 APIs.
package zoho
