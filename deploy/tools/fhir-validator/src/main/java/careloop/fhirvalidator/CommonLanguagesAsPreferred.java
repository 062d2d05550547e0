package careloop.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import java.util.List;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupportWrapper;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.instance.model.api.IBaseResource;

/**
 * HAPI's common code systems (CommonCodeSystemsTerminologyService), except that a valid BCP-47 tag
 * outside FHIR R4's "Common Languages" value set is information, not an error.
 *
 * <p>R4 binds that value set as preferred wherever it uses it (Patient.communication.language,
 * HealthcareService.communication, Resource.language, ...), with all of BCP-47 as the maximum; but
 * HAPI's service answers a tag outside it as an error whatever the binding's strength (hapi-fhir issue
 * 7959), so Vietnamese ("vi") would make a valid HealthcareService invalid. A tag that BCP-47 does not
 * have stays an error. (A wrapper, not a subclass: the service looks its messages up by its class.)
 */
final class CommonLanguagesAsPreferred extends BaseValidationSupportWrapper {
  private static final String LANGUAGES = CommonCodeSystemsTerminologyService.LANGUAGES_VALUESET_URL;
  private static final String BCP47 = CommonCodeSystemsTerminologyService.LANGUAGES_CODESYSTEM_URL;

  CommonLanguagesAsPreferred(FhirContext context) {
    super(context, new CommonCodeSystemsTerminologyService(context));
  }

  @Override
  public String getName() {
    return "careloop common code systems (languages as preferred)";
  }

  @Override
  public CodeValidationResult validateCode(
      ValidationSupportContext support,
      ConceptValidationOptions options,
      String system,
      String code,
      String display,
      String valueSetUrl) {
    CodeValidationResult result =
        super.validateCode(support, options, system, code, display, valueSetUrl);
    return asPreferred(support, options, system, code, valueSetUrl, result);
  }

  @Override
  public CodeValidationResult validateCodeInValueSet(
      ValidationSupportContext support,
      ConceptValidationOptions options,
      String system,
      String code,
      String display,
      IBaseResource valueSet) {
    CodeValidationResult result =
        super.validateCodeInValueSet(support, options, system, code, display, valueSet);
    String valueSetUrl =
        CommonCodeSystemsTerminologyService.getValueSetUrl(getFhirContext(), valueSet);
    return asPreferred(support, options, system, code, valueSetUrl, result);
  }

  private CodeValidationResult asPreferred(
      ValidationSupportContext support,
      ConceptValidationOptions options,
      String system,
      String code,
      String valueSetUrl,
      CodeValidationResult result) {
    if (result == null || result.isOk() || valueSetUrl == null || code == null) {
      return result;
    }
    boolean languages = valueSetUrl.split("\\|", 2)[0].equals(LANGUAGES);
    if (!languages || (system != null && !system.equals(BCP47))) {
      return result;
    }
    CodeValidationResult tag = super.validateCode(support, options, BCP47, code, null, null);
    if (tag == null || !tag.isOk()) {
      return result;
    }
    List<CodeValidationIssue> issues = result.getIssues().stream().map(this::asInformation).toList();
    return result.setSeverity(IssueSeverity.INFORMATION).setIssues(issues);
  }

  private CodeValidationIssue asInformation(CodeValidationIssue issue) {
    CodeValidationIssue information =
        new CodeValidationIssue(
            issue.getMessage(), IssueSeverity.INFORMATION, issue.getCode(), issue.getCoding());
    information.setDetails(issue.getDetails());
    return information;
  }
}
